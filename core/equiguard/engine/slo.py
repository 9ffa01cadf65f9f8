"""SLO verdicts: Met, Violated or Inconclusive, with a reason and the evidence.

`evaluate_slo` is a pure function: the statistics of the SLO's window, the
state carried from the previous evaluation and the clock go in; the verdict
and the next state come out. The rules are in docs/engine.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from equiguard.engine.intervals import log_ratio_interval, mover_difference
from equiguard.engine.metrics import (
    DENOMINATOR,
    LOWER_IS_BETTER,
    RATE_METRICS,
    CellSums,
    Estimate,
    estimate,
)
from equiguard.engine.monitoring import (
    DEFAULT_PLAN,
    MonitoringPlan,
    critical_z,
    two_sided_confidence,
)
from equiguard.engine.spec import OVERALL, UNKNOWN, Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import ALL

MET, VIOLATED, INCONCLUSIVE = "Met", "Violated", "Inconclusive"
# Metrics whose overall value is a weighted mean of its groups' values, so a
# group can be compared with everyone else and the result rescaled exactly.
_WEIGHTED_MEANS = frozenset(RATE_METRICS) | {"brier", "observedExpectedRatio"}


@dataclass(frozen=True)
class Evidence:
    metric: str
    attribute: str
    comparison: str
    threshold: float
    group: str | None = None
    reference: str | None = None
    estimate: float | None = None
    interval: tuple[float, float | None] | None = None
    group_value: float | None = None
    reference_value: float | None = None
    n: int | None = None
    reference_n: int | None = None
    confidence: float = 0.0
    insufficient: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "attribute": self.attribute,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "group": self.group,
            "reference": self.reference,
            "estimate": self.estimate,
            "interval": None if self.interval is None else list(self.interval),
            "groupValue": self.group_value,
            "referenceValue": self.reference_value,
            "n": self.n,
            "referenceN": self.reference_n,
            "confidence": self.confidence,
            "insufficient": list(self.insufficient),
            "suppressed": [],
        }


@dataclass(frozen=True)
class SloState:
    consecutive_breaches: int = 0
    breaching_since: float | None = None
    violated_since: float | None = None
    last_evaluated: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "consecutiveBreaches": self.consecutive_breaches,
            "breachingSince": self.breaching_since,
            "violatedSince": self.violated_since,
            "lastEvaluated": self.last_evaluated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SloState:
        count = data.get("consecutiveBreaches", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError("consecutiveBreaches: must be a non-negative integer")
        return cls(
            count,
            _time(data, "breachingSince"),
            _time(data, "violatedSince"),
            _time(data, "lastEvaluated"),
        )


@dataclass(frozen=True)
class Verdict:
    slo: str
    status: str
    reason: str
    message: str
    evidence: Evidence

    def to_dict(self, state: SloState | None = None) -> dict[str, object]:
        entry: dict[str, object] = {
            "verdict": self.status,
            "reason": self.reason,
            "message": self.message,
            "evidence": self.evidence.to_dict(),
        }
        if state is not None:
            entry["state"] = state.to_dict()
        return entry


@dataclass(frozen=True)
class _Comparison:
    """One comparison of a group with a reference (or with the floor)."""

    group: str
    reference: str | None
    estimate: float
    lower: float
    upper: float
    group_value: float
    reference_value: float | None
    n: int
    reference_n: int | None
    eligible: bool  # both sides have minSamples
    defined: bool  # the estimate exists


def evaluate_slo(
    slo: Slo,
    stats: Statistics,
    state: SloState,
    now: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
) -> tuple[Verdict, SloState]:
    """Judge one SLO on the statistics of its window.

    `plan=None` is a one-off evaluation (an audit): no monitoring correction,
    and one confident breach is enough.
    """
    groups = [g for d, g in stats.cells if d == slo.attribute and g != UNKNOWN]
    if not groups:
        raise ValueError(f"the statistics have no groups of {slo.attribute!r}")
    z = critical_z(
        1.0 - slo.confidence, _one_sided_comparisons(slo, len(groups)), slo.window_seconds, plan
    )
    comparisons, insufficient = _compare(slo, stats, groups, z)
    evidence = Evidence(
        metric=slo.metric,
        attribute=slo.attribute,
        comparison=slo.comparison,
        threshold=slo.threshold,
        confidence=two_sided_confidence(z),
        insufficient=tuple(insufficient),
    )
    ready = [c for c in comparisons if c.eligible and c.defined]
    confident = [c for c in ready if _confident_margin(slo, c) > 0.0]
    required = 1 if plan is None else slo.consecutive_breaches
    if confident:
        worst = max(confident, key=lambda c: _confident_margin(slo, c))
        count = state.consecutive_breaches + 1
        breaching_since = state.breaching_since if state.breaching_since is not None else now
        if count >= required:
            violated_since = state.violated_since if state.violated_since is not None else now
            status, reason = VIOLATED, "ThresholdExceeded"
            tail = f"past the threshold {slo.threshold:g}"
            if plan is not None:
                tail += f" for {count} consecutive evaluations"
        else:
            violated_since = None
            status, reason = INCONCLUSIVE, "BreachPending"
            tail = (
                f"past the threshold {slo.threshold:g} in {count} of the {required} "
                "consecutive evaluations that declare a breach"
            )
        next_state = SloState(count, breaching_since, violated_since, now)
        return _verdict(slo, status, reason, worst, evidence, f"the bound is {tail}"), next_state
    next_state = SloState(0, None, None, now)
    undefined = [c for c in comparisons if c.eligible and not c.defined]
    if insufficient:
        denominator = DENOMINATOR[slo.metric]
        message = (
            f"{slo.name}: {slo.attribute} groups {', '.join(insufficient)} have fewer than "
            f"{slo.min_samples} {_PLAIN_COUNT.get(denominator, denominator)} in the window"
        )
        return Verdict(slo.name, INCONCLUSIVE, "InsufficientSamples", message, evidence), next_state
    if undefined:
        first = undefined[0]
        evidence = replace(
            evidence,
            group=first.group,
            reference=first.reference,
            n=first.n,
            reference_n=first.reference_n,
        )
        message = (
            f"{slo.name}: {slo.metric} cannot be compared for {slo.attribute} group "
            f"{first.group} (undefined, e.g. one class only or a zero reference)"
        )
        return Verdict(slo.name, INCONCLUSIVE, "MetricUndefined", message, evidence), next_state
    if not ready:
        return _verdict_without_comparison(slo, evidence), next_state
    worst = max(ready, key=lambda c: _point_margin(slo, c))
    if _point_margin(slo, worst) > 0.0:
        return _verdict(
            slo,
            INCONCLUSIVE,
            "BreachNotConfirmed",
            worst,
            evidence,
            f"past the threshold {slo.threshold:g}, but the interval includes it",
        ), next_state
    return _verdict(
        slo, MET, "WithinThreshold", worst, evidence, f"within the threshold {slo.threshold:g}"
    ), next_state


def evaluate_slos(
    slos: Sequence[Slo],
    window: Callable[[float], Statistics],
    states: Mapping[str, SloState],
    now: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
) -> tuple[dict[str, Verdict], dict[str, SloState]]:
    """Evaluate several SLOs; `window(span_seconds)` gives each window's statistics once."""
    by_span: dict[float, Statistics] = {}
    verdicts: dict[str, Verdict] = {}
    next_states: dict[str, SloState] = {}
    for slo in slos:
        if slo.window_seconds not in by_span:
            by_span[slo.window_seconds] = window(slo.window_seconds)
        verdicts[slo.name], next_states[slo.name] = evaluate_slo(
            slo, by_span[slo.window_seconds], states.get(slo.name, SloState()), now, plan
        )
    return verdicts, next_states


_PLAIN_COUNT = {
    "n": "labelled predictions",
    "positives": "positives",
    "negatives": "negatives",
    "predictedPositives": "predicted positives",
    "predictedNegatives": "predicted negatives",
}


def _one_sided_comparisons(slo: Slo, groups: int) -> int:
    """One-sided tests per evaluation: a gap or a ratio can breach either way."""
    if slo.comparison == "floor":
        return groups
    if slo.comparison == "maxGap" or slo.reference == "best":
        return max(groups * (groups - 1), 2)
    if slo.reference == OVERALL:
        return 2 * groups
    return max(2 * (groups - 1), 2)


def _compare(
    slo: Slo, stats: Statistics, groups: list[str], z: float
) -> tuple[list[_Comparison], list[str]]:
    index = {cell: i for i, cell in enumerate(stats.cells)}
    rows = np.array([index[(slo.attribute, g)] for g in groups])
    sums = CellSums.of(stats, rows)
    own = estimate(slo.metric, sums, z)
    denominators = sums.counts[DENOMINATOR[slo.metric]]
    enough = denominators >= slo.min_samples
    insufficient = [g for g, ok in zip(groups, enough, strict=True) if not ok]
    if slo.comparison == "floor":
        return [
            _Comparison(
                g,
                None,
                float(own.value[i]),
                float(own.lower[i]),
                float(own.upper[i]),
                float(own.value[i]),
                None,
                int(denominators[i]),
                None,
                bool(enough[i]),
                not math.isnan(own.value[i]),
            )
            for i, g in enumerate(groups)
        ], insufficient
    if slo.comparison == "maxGap" or slo.reference == "best":
        return _pairs(slo, groups, own, denominators, enough), insufficient
    if slo.reference == OVERALL:
        return _against_overall(slo, stats, index, rows, groups, own, z), insufficient
    assert slo.reference is not None
    ref = groups.index(slo.reference)  # a short reference is already in `insufficient`
    others = np.array([i for i in range(len(groups)) if i != ref], dtype=np.int64)
    return _against(
        slo, groups, own, denominators, enough, others, np.full_like(others, ref)
    ), insufficient


def _pairs(
    slo: Slo, groups: list[str], own: Estimate, denominators: np.ndarray, enough: np.ndarray
) -> list[_Comparison]:
    if slo.reference == "best":
        candidates = [i for i in range(len(groups)) if enough[i] and not math.isnan(own.value[i])]
        if not candidates:
            return []
        pick = min if slo.metric in LOWER_IS_BETTER else max
        best = pick(candidates, key=lambda i: float(own.value[i]))
        left = np.array([i for i in range(len(groups)) if i != best], dtype=np.int64)
        right = np.full_like(left, best)
    else:
        left_list, right_list = np.triu_indices(len(groups), k=1)
        left, right = left_list.astype(np.int64), right_list.astype(np.int64)
    comparisons = _against(slo, groups, own, denominators, enough, left, right)
    if slo.comparison != "maxGap":
        return comparisons
    return [_orient(c, slo.metric in LOWER_IS_BETTER) for c in comparisons]


def _orient(c: _Comparison, lower_is_better: bool) -> _Comparison:
    """A gap as better minus worse (>= 0), the worse group as `group`."""
    if not c.defined:
        return c
    if c.estimate < 0:
        c = replace(
            c,
            estimate=-c.estimate,
            lower=-c.upper,
            upper=-c.lower,
            group=c.reference or "",
            reference=c.group,
            group_value=c.reference_value or 0.0,
            reference_value=c.group_value,
            n=c.reference_n or 0,
            reference_n=c.n,
        )
    # Now `group` has the higher value; it is the worse one only if lower is better.
    if lower_is_better:
        return c
    return replace(
        c,
        group=c.reference or "",
        reference=c.group,
        group_value=c.reference_value or 0.0,
        reference_value=c.group_value,
        n=c.reference_n or 0,
        reference_n=c.n,
    )


def _against(
    slo: Slo,
    groups: list[str],
    own: Estimate,
    denominators: np.ndarray,
    enough: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
) -> list[_Comparison]:
    """Each groups[left[k]] against groups[right[k]], as independent samples."""
    args = (
        own.value[left],
        own.lower[left],
        own.upper[left],
        own.value[right],
        own.lower[right],
        own.upper[right],
    )
    if slo.comparison == "ratioToReference":
        lower, upper = log_ratio_interval(*args)
        with np.errstate(divide="ignore", invalid="ignore"):
            point = own.value[left] / own.value[right]
        point = np.where(own.value[right] > 0, point, np.nan)
    else:
        lower, upper = mover_difference(*args)
        point = own.value[left] - own.value[right]
    return [
        _Comparison(
            groups[i],
            groups[j],
            float(point[k]),
            float(lower[k]),
            float(upper[k]),
            float(own.value[i]),
            float(own.value[j]),
            int(denominators[i]),
            int(denominators[j]),
            bool(enough[i] and enough[j]),
            not math.isnan(point[k]),
        )
        for k, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True))
    ]


def _against_overall(
    slo: Slo,
    stats: Statistics,
    index: Mapping[tuple[str, str], int],
    rows: np.ndarray,
    groups: list[str],
    own: Estimate,
    z: float,
) -> list[_Comparison]:
    overall_row = index[(OVERALL, ALL)]
    overall_sums = CellSums.of(stats, np.array([overall_row]))
    overall = estimate(slo.metric, overall_sums, z)
    denominators = CellSums.of(stats, rows).counts[DENOMINATOR[slo.metric]]
    overall_n = int(overall_sums.counts[DENOMINATOR[slo.metric]][0])
    ref_value = float(overall.value[0])
    if slo.metric in _WEIGHTED_MEANS:
        # overall = w * group + (1 - w) * rest: compare with the rest, then rescale.
        rest = estimate(slo.metric, CellSums.complement(stats, rows, overall_row), z)
        weight = _weights(slo.metric, stats, rows, overall_row, denominators, overall_n)
        if slo.comparison == "ratioToReference":
            lower, upper = log_ratio_interval(
                own.value, own.lower, own.upper, rest.value, rest.lower, rest.upper
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                lower = lower / (weight * lower + 1.0 - weight)
                upper = np.where(
                    np.isinf(upper), 1.0 / weight, upper / (weight * upper + 1.0 - weight)
                )
                point = own.value / ref_value if ref_value > 0 else np.full(len(groups), np.nan)
            everyone = weight >= 1.0
            lower, upper = np.where(everyone, 1.0, lower), np.where(everyone, 1.0, upper)
        else:
            lower, upper = mover_difference(
                own.value, own.lower, own.upper, rest.value, rest.lower, rest.upper
            )
            everyone = weight >= 1.0
            lower = np.where(everyone, 0.0, (1.0 - weight) * lower)
            upper = np.where(everyone, 0.0, (1.0 - weight) * upper)
            point = own.value - ref_value
    else:
        # Treated as independent: conservative, since a group and overall correlate positively.
        n = len(groups)
        args = (
            own.value,
            own.lower,
            own.upper,
            np.full(n, ref_value),
            np.full(n, overall.lower[0]),
            np.full(n, overall.upper[0]),
        )
        if slo.comparison == "ratioToReference":
            lower, upper = log_ratio_interval(*args)
            point = own.value / ref_value if ref_value > 0 else np.full(n, np.nan)
        else:
            lower, upper = mover_difference(*args)
            point = own.value - ref_value
    return [
        _Comparison(
            g,
            OVERALL,
            float(point[i]),
            float(lower[i]),
            float(upper[i]),
            float(own.value[i]),
            ref_value,
            int(denominators[i]),
            overall_n,
            bool(denominators[i] >= slo.min_samples),
            not math.isnan(point[i]),
        )
        for i, g in enumerate(groups)
    ]


def _weights(
    metric: str,
    stats: Statistics,
    rows: np.ndarray,
    overall_row: int,
    denominators: np.ndarray,
    overall_n: int,
) -> np.ndarray:
    """Each group's share of overall's denominator (of the expected count for O/E)."""
    if metric == "observedExpectedRatio":
        expected = stats.score_sums.sum(axis=(1, 2))
        part, total = expected[rows], float(expected[overall_row])
    else:
        part, total = denominators.astype(np.float64), float(overall_n)
    return part / total if total > 0 else np.zeros(len(rows))


def _confident_margin(slo: Slo, c: _Comparison) -> float:
    """How far the interval lies past the threshold (> 0 means a confident breach)."""
    t = slo.threshold
    if slo.comparison == "floor":
        return t - c.upper
    if slo.comparison == "ratioToReference":
        log_t = math.log(t)
        low = -math.inf if c.lower <= 0 else math.log(c.lower)
        high = math.inf if c.upper == math.inf else math.log(c.upper) if c.upper > 0 else -math.inf
        return max(log_t - high, low + log_t)
    return max(c.lower - t, -t - c.upper)


def _point_margin(slo: Slo, c: _Comparison) -> float:
    t = slo.threshold
    if slo.comparison == "floor":
        return t - c.estimate
    if slo.comparison == "ratioToReference":
        return -math.inf if c.estimate <= 0 else abs(math.log(c.estimate)) + math.log(t)
    return abs(c.estimate) - t


def _verdict(
    slo: Slo, status: str, reason: str, c: _Comparison, evidence: Evidence, tail: str
) -> Verdict:
    upper: float | None = None if math.isinf(c.upper) else c.upper
    evidence = replace(
        evidence,
        group=c.group,
        reference=c.reference,
        estimate=c.estimate,
        interval=(c.lower, upper),
        group_value=c.group_value,
        reference_value=c.reference_value,
        n=c.n,
        reference_n=c.reference_n,
    )
    level = f"{100 * evidence.confidence:.4g}%"
    bound = f"{c.lower:.3f} to {'unbounded' if upper is None else f'{upper:.3f}'}"
    if slo.comparison == "maxGap":
        what = (
            f"the largest {slo.metric} gap between {slo.attribute} groups is {c.estimate:.3f} "
            f"({c.group} vs {c.reference}; {level} interval {bound})"
        )
    elif slo.comparison == "gapToReference":
        what = (
            f"{slo.metric} of {slo.attribute} group {c.group} differs from {c.reference} by "
            f"{c.estimate:+.3f} ({level} interval {bound})"
        )
    elif slo.comparison == "ratioToReference":
        what = (
            f"{slo.metric} of {slo.attribute} group {c.group} is {c.estimate:.3f} times "
            f"{c.reference} ({level} interval {bound})"
        )
    else:
        what = (
            f"{slo.metric} of {slo.attribute} group {c.group} is {c.estimate:.3f} "
            f"({level} interval {bound})"
        )
    return Verdict(slo.name, status, reason, f"{slo.name}: {what}; {tail}", evidence)


def _verdict_without_comparison(slo: Slo, evidence: Evidence) -> Verdict:
    # maxGap over a single declared group: nothing can differ.
    return Verdict(
        slo.name,
        MET,
        "WithinThreshold",
        f"{slo.name}: {slo.attribute} has one declared group, so there is no gap",
        evidence,
    )


def _time(data: Mapping[str, object], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: must be a number of seconds or null")
    return float(value)
