"""The early warning's reference, kept by the operator while the pods still hold it.

The reference is the last good revision's labelled outcomes. With SQLite each
pod keeps its own predictions, on its own volume, so once a new revision's
pods replace the last good one's, no pod can answer for the old revision
(with PostgreSQL every replica can). The operator therefore keeps the
reference as it last read it, one per model, and reads it from memory when
the pods' answer for that revision is empty. The sums stay in the operator's
memory: they are never written to status, records, logs or metrics. After an
operator restart the reference is read from the pods again; until a shared
store or the revision itself serves it, the warning says too little data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from equiguard.engine.stats import Statistics


@dataclass(frozen=True)
class _Kept:
    revision: str
    window_seconds: float
    statistics: Statistics


class ReferenceKeeper:
    """The last reference read for each model, by (namespace, name)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], _Kept] = {}
        self._lock = threading.Lock()

    def read(
        self,
        model: tuple[str, str],
        revision: str,
        window_seconds: float,
        answered: Statistics,
    ) -> Statistics:
        """What the pods answered for the reference, kept; or, when they held none
        of it, the same reference as last kept (else their empty answer)."""
        with self._lock:
            if not answered.is_empty():
                self._kept[model] = _Kept(revision, window_seconds, answered)
                return answered
            kept = self._kept.get(model)
        if kept is not None and (kept.revision, kept.window_seconds) == (revision, window_seconds):
            return kept.statistics
        return answered

    def forget(self, model: tuple[str, str]) -> None:
        with self._lock:
            self._kept.pop(model, None)


REFERENCES = ReferenceKeeper()
