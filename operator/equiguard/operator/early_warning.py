"""The early warning of the serving revision, as status and records show it (pure).

`warning_result` turns the engine's `Assessment` into what may leave the
operator: names of signals, groups and SLOs, shares, rates and intervals,
never a count (every share and estimate shown rests on at least the
signal's `min_samples` predictions, and the counts themselves are not
written, so none from 1 to 10 can be read or derived). A warning alerts and,
with `HoldRollout`, keeps the serving revision from qualifying; nothing here
rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import RevisionRecord, write_number
from equiguard.engine.early_warning import Assessment, EstimateJudgement, Watched
from equiguard.engine.shift import ShiftSignal
from equiguard.operator.alerts import prometheus_duration
from equiguard.operator.serving import last_good

WARNING, CLEAR, UNAVAILABLE = "Warning", "Clear", "Unavailable"
# Status keeps the first of many fired signals; the record and the count say how many.
SHOWN_SIGNALS = 20
LAST_GOOD, SERVING = "LastGoodRevision", "ServingRevision"


@dataclass(frozen=True)
class Reference:
    """Whose labelled outcomes the scores are compared with, and over how long."""

    revision: str
    source: str  # LastGoodRevision | ServingRevision (no revision has qualified yet)
    window_seconds: float

    def write(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "source": self.source,
            "window": prometheus_duration(int(self.window_seconds)),
        }


def reference_for(
    revisions: tuple[RevisionRecord, ...], serving: str, window_seconds: float
) -> Reference:
    """The last good revision; the serving one's own outcomes until one has qualified."""
    good = last_good(revisions, exclude="")
    if good is None:
        return Reference(serving, SERVING, window_seconds)
    return Reference(good.revision, LAST_GOOD, window_seconds)


@dataclass(frozen=True)
class WarningResult:
    """The early warning of one evaluation, ready for status and records."""

    state: str  # Warning | Clear | Unavailable
    reason: str
    message: str
    revision: str
    reference: Reference
    signals: tuple[Mapping[str, Any], ...] = ()
    estimates: tuple[Mapping[str, Any], ...] = ()
    signals_fired: int = 0
    slos: tuple[str, ...] = ()  # the labelled SLOs that will decide whether it is borne out

    def evidence(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "revision": self.revision,
            "reference": self.reference.write(),
            "signalsFired": self.signals_fired,
            "signals": [dict(s) for s in self.signals],
            "estimates": [dict(e) for e in self.estimates],
        }


def watched_of(model: ClinicalModel) -> tuple[Watched, ...]:
    declared = model.early_warning
    if declared is None:
        return ()
    return tuple(
        Watched(e.slo, e.metric, e.attribute, e.comparison, e.threshold) for e in declared.estimates
    )


def unavailable_warning(
    revision: str, reference: Reference, reason: str, message: str
) -> WarningResult:
    return WarningResult(UNAVAILABLE, reason, message, revision, reference)


def warning_result(
    model: ClinicalModel, assessment: Assessment, revision: str, reference: Reference
) -> WarningResult:
    """What status and records show of an assessment."""
    signals = tuple(_signal(s) for s in assessment.signals)
    estimates = tuple(_estimate(j) for j in assessment.judgements)
    breached = [j.watched.name for j in assessment.judgements if j.breached]
    watched = [w.name for w in watched_of(model)]
    slos = tuple(breached or watched or [slo.name for slo in model.slos])
    if assessment.warning:
        parts = []
        if signals:
            parts.append(f"{len(signals)} shift signal(s), first {_signal_text(signals[0])}")
        parts.extend(_estimate_text(e) for e in estimates if e.get("breached"))
        message = f"Early warning on {revision}: " + "; ".join(parts) + "."
        reason = "EstimateBreached" if breached else "ShiftDetected"
        return WarningResult(
            WARNING, reason, message, revision, reference, signals[:SHOWN_SIGNALS], estimates,
            len(signals), slos,
        )  # fmt: skip
    if assessment.tested == 0 and not any(j.judged for j in assessment.judgements):
        return WarningResult(
            UNAVAILABLE, "TooLittleData",
            f"Too few predictions in the window, or labelled outcomes in the reference "
            f"{reference.revision}, to test any signal or estimate.",
            revision, reference, (), estimates,
        )  # fmt: skip
    message = f"No shift against {reference.revision} and no watched estimate past its threshold."
    return WarningResult(CLEAR, "NoShift", message, revision, reference, (), estimates, 0, slos)


def _signal(signal: ShiftSignal) -> dict[str, Any]:
    out: dict[str, Any] = {
        "signal": signal.signal,
        "dimension": signal.dimension,
        "group": signal.group,
        "current": write_number(signal.current),
        "reference": write_number(signal.reference),
    }
    if signal.interval is not None:
        out["lower"], out["upper"] = (write_number(x) for x in signal.interval)
    if signal.cut is not None:
        out["cut"] = write_number(signal.cut)
    return {key: value for key, value in out.items() if value != ""}


def _estimate(judged: EstimateJudgement) -> dict[str, Any]:
    watched = judged.watched
    out: dict[str, Any] = {
        "slo": watched.name,
        "metric": watched.metric,
        "attribute": watched.attribute,
        "comparison": watched.comparison,
        "threshold": f"{watched.threshold:g}",
        "breached": judged.breached,
        "judged": judged.judged,
        "reason": judged.reason,
        "groups": " vs ".join(judged.groups),
        "estimate": write_number(judged.estimate),
        "lower": write_number(judged.lower),
        "upper": write_number(judged.upper),
    }
    return {key: value for key, value in out.items() if value != ""}


def _signal_text(signal: Mapping[str, Any]) -> str:
    where = f"{signal['dimension']}={signal['group']}"
    return f"{signal['signal']} in {where} ({signal.get('current', '?')} against " + (
        f"{signal.get('reference', '?')})"
    )


def _estimate_text(estimate: Mapping[str, Any]) -> str:
    figure = f"{estimate.get('estimate', '?')} ({estimate.get('lower', '?')} to " + (
        f"{estimate.get('upper', '?')})"
    )
    if estimate["comparison"] == "floor":
        return (
            f"{estimate['slo']}: estimated {estimate['metric']} of {estimate.get('groups')} "
            f"{figure} is below {estimate['threshold']}"
        )
    return (
        f"{estimate['slo']}: estimated {estimate['metric']} gap {estimate.get('groups')} "
        f"{figure} is past {estimate['threshold']}"
    )


@dataclass(frozen=True)
class Hold:
    """Whether the warning keeps the serving revision from qualifying, and why."""

    holding: bool
    message: str = ""


def rollout_hold(model: ClinicalModel, result: WarningResult | None) -> Hold:
    declared = model.early_warning
    if declared is None or not declared.holds_rollout or result is None:
        return Hold(False)
    if result.state != WARNING:
        return Hold(False)
    return Hold(
        True,
        f"HoldRollout: {result.revision} does not qualify as the last good revision while "
        f"the early warning holds; it is never rolled back for a warning alone.",
    )
