"""How actions are paced: a chain of checks, each saying why an action must wait (pure).

A check returns a CamelCase reason, or "" when it lets the action go ahead;
the first reason of the chain holds the action back. Only actions taken in
the model's present mode count: DryRun actions never pace Enforce ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import ActionEntry

DAY = timedelta(days=1)

Check = Callable[[str, ClinicalModel, Sequence[ActionEntry], datetime], str]

MESSAGES = {
    "CooldownActive": "the cooldown since the last action has not passed",
    "DailyCapReached": "the model reached its maximum of actions per day",
    "RecalibrationCapReached": "the model reached its maximum of recalibrations per period",
    "NoGoodRevision": "no other revision qualified as good, so there is nothing to roll back to",
}


def cooldown(
    action: str, model: ClinicalModel, actions: Sequence[ActionEntry], now: datetime
) -> str:
    wait = timedelta(seconds=model.pacing.cooldown)
    return "CooldownActive" if any(now - entry.time < wait for entry in actions) else ""


def daily_cap(
    action: str, model: ClinicalModel, actions: Sequence[ActionEntry], now: datetime
) -> str:
    today = sum(now - entry.time < DAY for entry in actions)
    return "DailyCapReached" if today >= model.pacing.max_actions_per_day else ""


def recalibration_cap(
    action: str, model: ClinicalModel, actions: Sequence[ActionEntry], now: datetime
) -> str:
    if action != "Recalibrate":
        return ""
    period = timedelta(seconds=model.pacing.recalibration_period)
    recent = [e for e in actions if e.action == "Recalibrate" and now - e.time < period]
    return "RecalibrationCapReached" if len(recent) >= model.pacing.max_recalibrations else ""


CHAIN: tuple[Check, ...] = (cooldown, daily_cap, recalibration_cap)


def held_back(
    action: str,
    model: ClinicalModel,
    actions: Sequence[ActionEntry],
    now: datetime,
) -> str:
    """Why pacing forbids `action` now, or "" when it may go ahead."""
    same_mode = [entry for entry in actions if entry.dry_run == model.dry_run]
    return next((reason for check in CHAIN if (reason := check(action, model, same_mode, now))), "")


def log_horizon(model: ClinicalModel) -> timedelta:
    """How long an action stays in the log: as long as any check may count it."""
    return max(DAY, timedelta(seconds=model.pacing.recalibration_period))
