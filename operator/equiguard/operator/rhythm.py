"""When a model's next evaluation is due: its interval, at a phase of its own (pure).

Models created together, or all overdue when the operator starts again after
an outage, would otherwise evaluate together for ever after: every interval
the whole fleet queues for the same threads and API server in one burst, and
the last of the burst waits for all the others. Each model instead keeps a
phase within its interval, drawn from its uid (stable across restarts,
different between models), so a fleet's evaluations spread evenly over the
interval. Moving a model onto its phase shortens or stretches one interval
by at most half; from then on evaluations are exactly an interval apart.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta


def phase_of(uid: str, interval: float) -> float:
    """Seconds into each interval (counted from the Unix epoch) at which the model is due."""
    # A cryptographic digest only for its even spread: uids differ in few characters.
    drawn = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big")
    return drawn / 2**64 * interval


def next_evaluation(last: datetime, interval: float, phase: float) -> datetime:
    """The evaluation after one at `last`: an interval later, moved to the nearest phase."""
    target = last.timestamp() + interval
    shift = (phase - target) % interval
    if shift > interval / 2:
        shift -= interval
    return last + timedelta(seconds=interval + shift)
