"""Kubernetes-style conditions that keep their lastTransitionTime until the status changes."""

from __future__ import annotations

from datetime import datetime

from equiguard.contracts.status import Condition, PriorStatus


def condition(
    prior: PriorStatus,
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> Condition:
    """A condition; its transition time moves only when its status does."""
    before = prior.condition(type_)
    changed = before is None or before.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition=now if changed or before is None else before.last_transition,
        observed_generation=generation,
    )
