"""The early-warning contract: `spec.earlyWarning`, what a model watches before outcomes arrive.

Scores arrive with every prediction; outcomes days later. The early warning
compares the serving revision's recent scores with a reference, the last
good revision's labelled outcomes, per declared group: shift signals (score
distribution, flag rate, subgroup mix, label coverage; `engine.shift`) and
label-free estimates of the watched SLOs (`engine.estimation`). A warning
alerts, or with `HoldRollout` also keeps a new revision from qualifying as
the last good one; it never rolls back on its own, since estimates warn and
outcomes decide.

The API server validates and defaults the spec; a manifest read from a file
(audit, the report) is read with the same defaults and refused with the field
named. Every default equals the CRD's (tests/unit/test_contracts_crd.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from equiguard.engine.shift import SIGNALS
from equiguard.engine.spec import SpecError, parse_duration

ACTIONS: tuple[str, ...] = ("Alert", "HoldRollout")
# The metrics a score alone can estimate (docs/early-warning.md): under
# calibration the expected positives among the flagged are the sum of scores.
ESTIMABLE_METRICS: tuple[str, ...] = ("tpr", "fpr", "ppv", "selectionRate")
# Gaps between groups and each group's own bound; the *ToReference kinds need
# a reference group's estimate, which is not built.
ESTIMABLE_COMPARISONS: tuple[str, ...] = ("maxGap", "floor")
# Label coverage compares joined outcomes with predictions, which on a window
# younger than the outcome delay differ by timing alone (a group whose
# outcomes come sooner looks over-covered): it is checked only when named.
DEFAULT_SIGNALS: tuple[str, ...] = tuple(s for s in SIGNALS if s != "labelCoverage")
DEFAULTS: Mapping[str, str | int] = {
    "window": "1d",
    "referenceWindow": "30d",
    "falseAlarmRate": "0.01",
    "minOutcomes": 50,
    "action": "Alert",
}
FIELD = "spec.earlyWarning"


@dataclass(frozen=True)
class WatchedEstimate:
    """One labelled SLO watched on estimates; its threshold may be tighter than the SLO's."""

    slo: str
    metric: str
    attribute: str
    comparison: str  # maxGap | floor
    threshold: float


@dataclass(frozen=True)
class EarlyWarning:
    """What a ClinicalModel watches before its outcomes arrive, and what a warning does."""

    window_seconds: float  # the recent scores compared with the reference
    reference_window_seconds: float  # the last good revision's labelled outcomes
    signals: tuple[str, ...]  # of engine.shift.SIGNALS, in that order
    estimates: tuple[WatchedEstimate, ...]
    false_alarm_rate: float  # shared by every signal, group and estimate over 30 days
    min_outcomes: int  # reference outcomes per group and side of the threshold
    action: str  # Alert | HoldRollout

    @property
    def holds_rollout(self) -> bool:
        """Whether a warning keeps the serving revision from qualifying as the last good one."""
        return self.action == "HoldRollout"


def read(spec: Mapping[str, Any]) -> EarlyWarning | None:
    """`spec.earlyWarning` read with its defaults; None when the model declares none.

    SpecError names the field of anything a file (not the API server) gets wrong.
    """
    declared = spec.get("earlyWarning")
    if declared is None:
        return None
    if not isinstance(declared, Mapping):
        raise SpecError(FIELD, "must be an object")
    setting = {**DEFAULTS, **declared}
    return EarlyWarning(
        window_seconds=_duration(setting, "window"),
        reference_window_seconds=_duration(setting, "referenceWindow"),
        signals=_signals(setting.get("signals", DEFAULT_SIGNALS)),
        estimates=tuple(
            _estimate(item, index, spec.get("slos", ()))
            for index, item in enumerate(setting.get("estimates", ()))
        ),
        false_alarm_rate=_fraction(setting, "falseAlarmRate", upper=0.1),
        min_outcomes=_count(setting, "minOutcomes"),
        action=_choice(setting, "action", ACTIONS),
    )


def _duration(setting: Mapping[str, Any], key: str) -> float:
    try:
        return parse_duration(str(setting[key]))
    except ValueError as error:
        raise SpecError(f"{FIELD}.{key}", str(error)) from None


def _fraction(setting: Mapping[str, Any], key: str, upper: float) -> float:
    try:
        value = float(str(setting[key]))
    except ValueError:
        value = -1.0
    if not 0.0 < value <= upper:
        raise SpecError(f"{FIELD}.{key}", f"must be a decimal string in (0, {upper}]")
    return value


def _count(setting: Mapping[str, Any], key: str) -> int:
    value = setting[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 11:
        raise SpecError(f"{FIELD}.{key}", "must be an integer of at least 11")
    return value


def _choice(setting: Mapping[str, Any], key: str, allowed: Sequence[str]) -> str:
    value = setting[key]
    if value not in allowed:
        raise SpecError(f"{FIELD}.{key}", f"must be one of {', '.join(allowed)}")
    return str(value)


def _signals(declared: object) -> tuple[str, ...]:
    if not isinstance(declared, Sequence) or isinstance(declared, str):
        raise SpecError(f"{FIELD}.signals", "must be a list")
    unknown = sorted(set(map(str, declared)) - set(SIGNALS))
    if unknown:
        raise SpecError(f"{FIELD}.signals", f"{unknown[0]!r} is not one of {', '.join(SIGNALS)}")
    return tuple(signal for signal in SIGNALS if signal in declared)


def _estimate(item: object, index: int, slos: Sequence[Mapping[str, Any]]) -> WatchedEstimate:
    where = f"{FIELD}.estimates[{index}]"
    if not isinstance(item, Mapping) or "slo" not in item:
        raise SpecError(where, "must be an object naming an slo")
    slo = next((slo for slo in slos if slo.get("name") == item["slo"]), None)
    if slo is None:
        raise SpecError(f"{where}.slo", f"{item['slo']!r} names no SLO of spec.slos")
    if slo["metric"] not in ESTIMABLE_METRICS:
        raise SpecError(
            f"{where}.slo", f"a {slo['metric']} SLO cannot be estimated from scores alone"
        )
    if slo["comparison"] not in ESTIMABLE_COMPARISONS:
        raise SpecError(
            f"{where}.slo", f"{slo['comparison']} SLOs are not estimated; use maxGap or floor"
        )
    threshold = item.get("threshold", slo["threshold"])
    try:
        value = float(str(threshold))
    except ValueError:
        raise SpecError(f"{where}.threshold", "must be a decimal string") from None
    return WatchedEstimate(slo["name"], slo["metric"], slo["attribute"], slo["comparison"], value)
