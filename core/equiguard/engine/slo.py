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
from equiguard.engine.evidence import Evidence, Gap, SloState, SloVerdict
from equiguard.engine.groupwise import GroupComparison, compare_groups, comparison_count
from equiguard.engine.metrics import DENOMINATOR, CellSums
from equiguard.engine.monitoring import (
    DEFAULT_PLAN,
    MonitoringPlan,
    boundary_z,
    comparison_alpha,
    effective_outcomes,
    epoch_spans,
    two_sided_confidence,
)
from equiguard.engine.planner import scale_to_decide
from equiguard.engine.spec import OVERALL, UNKNOWN, Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import ALL
from equiguard.engine.suppression import is_small
from equiguard.engine.verdict import Verdict

__all__ = [
    "Evidence",
    "Gap",
    "SloState",
    "SloVerdict",
    "evaluate_slo",
    "evaluate_slos",
    "slo_spans",
]


def evaluate_slo(
    slo: Slo,
    stats: Statistics | Sequence[Statistics],
    state: SloState,
    now: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
    *,
    slo_count: int = 1,
    spans: Sequence[float] = (),
) -> tuple[SloVerdict, SloState]:
    """Judge one SLO on its statistics: the window, or under a plan the epochs in
    use (oldest first, see `monitoring.epoch_spans`; `spans` names them).

    `plan=None` is a one-off evaluation (an audit, a gate): one fixed-sample
    interval per comparison, and one confident breach is enough. `slo_count`
    SLOs share the error of `1 - confidence`.
    """
    epochs = [stats] if isinstance(stats, Statistics) else list(stats)
    if not epochs:
        raise ValueError("evaluate_slo needs the statistics of at least one epoch")
    groups = [g for d, g in epochs[0].cells if d == slo.attribute and g != UNKNOWN]
    if not groups:
        raise ValueError(f"the statistics have no groups of {slo.attribute!r}")
    alpha = comparison_alpha(
        1.0 - slo.confidence,
        comparison_count(slo, len(groups)),
        slo.window_seconds,
        plan,
        slo_count,
    )
    judged = [_judge(slo, epoch, groups, alpha, plan) for epoch in epochs]
    for k, judgement in enumerate(judged):
        span = spans[k] if k < len(spans) else None
        judged[k] = replace(judgement, evidence=replace(judgement.evidence, span_seconds=span))
    required = 1 if plan is None else slo.consecutive_breaches
    breaches = [(j, c) for j in judged for c in j.ready if _confident_margin(slo, c) > 0.0]
    if breaches:
        judgement, worst = max(breaches, key=lambda jc: _confident_margin(slo, jc[1]))
        count = state.consecutive_breaches + 1
        breaching_since = state.breaching_since if state.breaching_since is not None else now
        if count >= required:
            violated_since = state.violated_since if state.violated_since is not None else now
            status, reason = Verdict.VIOLATED, "ThresholdExceeded"
            tail = f"past the threshold {slo.threshold:g}"
            if plan is not None:
                tail += f" for {count} consecutive evaluations"
        else:
            violated_since = None
            status, reason = Verdict.INCONCLUSIVE, "BreachPending"
            tail = (
                f"past the threshold {slo.threshold:g} in {count} of the {required} "
                "consecutive evaluations that declare a breach"
            )
        next_state = SloState(count, breaching_since, violated_since, now)
        verdict = _verdict(slo, status, reason, worst, judgement, f"the bound is {tail}")
        return verdict, next_state
    next_state = SloState(0, None, None, now)
    shown = [j for j in judged if j.met] or judged[:1]
    return _undecided(slo, shown[0]), next_state


def evaluate_slos(
    slos: Sequence[Slo],
    window: Callable[[float], Statistics],
    states: Mapping[str, SloState],
    now: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
) -> tuple[dict[str, SloVerdict], dict[str, SloState]]:
    """Evaluate several SLOs; `window(span_seconds)` gives each span's statistics once.

    Under a plan the spans are the SLOs' epochs in use (`slo_spans`); without
    one, the SLOs' windows.
    """
    by_span: dict[float, Statistics] = {}
    verdicts: dict[str, SloVerdict] = {}
    next_states: dict[str, SloState] = {}
    for slo in slos:
        spans = slo_spans(slo, now, plan)
        for span in spans:
            if span not in by_span:
                by_span[span] = window(span)
        verdicts[slo.name], next_states[slo.name] = evaluate_slo(
            slo,
            [by_span[span] for span in spans],
            states.get(slo.name, SloState()),
            now,
            plan,
            slo_count=len(slos),
            spans=spans,
        )
    return verdicts, next_states


def slo_spans(slo: Slo, now: float, plan: MonitoringPlan | None) -> tuple[float, ...]:
    """The spans of statistics an evaluation of `slo` at `now` reads, oldest first."""
    if plan is None:
        return (slo.window_seconds,)
    return epoch_spans(now, slo.window_seconds, plan)


_PLAIN_COUNT = {
    "n": "labelled predictions",
    "positives": "positives",
    "negatives": "negatives",
    "predictedPositives": "predicted positives",
    "predictedNegatives": "predicted negatives",
}


@dataclass(frozen=True)
class _Judgement:
    """One epoch's comparisons of an SLO, before the epochs are combined."""

    ready: list[GroupComparison]
    undefined: list[GroupComparison]
    insufficient: list[str]
    shortfall: int  # outcomes the shortest group lacks of minSamples
    met: bool
    evidence: Evidence
    z_at: Callable[[float], float]  # the z this epoch would use with k times the outcomes


def _judge(
    slo: Slo, stats: Statistics, groups: list[str], alpha: float, plan: MonitoringPlan | None
) -> _Judgement:
    index = {cell: i for i, cell in enumerate(stats.cells)}
    rows = np.array([index[(slo.attribute, g)] for g in groups])
    counts = CellSums.of(stats, rows).counts[DENOMINATOR[slo.metric]]
    overall_n = int(
        CellSums.of(stats, np.array([index[(OVERALL, ALL)]])).counts[DENOMINATOR[slo.metric]][0]
    )
    eligible = [int(n) for n in counts if n >= slo.min_samples]
    outcomes = _intrinsic_times(slo, eligible, overall_n)

    def z_at(scale: float) -> float:
        return max(boundary_z(alpha, scale * v, plan) for v in outcomes)

    z = z_at(1.0)
    comparisons, insufficient = compare_groups(slo, stats, groups, z)
    shortfall = max(
        (_shortfall(slo.min_samples, int(n)) for n in counts if n < slo.min_samples), default=0
    )
    ready = [c for c in comparisons if c.eligible and c.defined]
    undefined = [c for c in comparisons if c.eligible and not c.defined]
    met = not insufficient and not undefined and all(_within(slo, c) for c in ready)
    evidence = Evidence(
        metric=slo.metric,
        attribute=slo.attribute,
        comparison=slo.comparison,
        threshold=slo.threshold,
        confidence=two_sided_confidence(z),
        insufficient=tuple(insufficient),
        largest=_largest(slo, ready),
        outcome_unit=_PLAIN_COUNT.get(DENOMINATOR[slo.metric], DENOMINATOR[slo.metric]),
    )
    return _Judgement(ready, undefined, insufficient, shortfall, met, evidence, z_at)


def _shortfall(min_samples: int, n: int) -> int:
    # A count from 1 to 10 must not be derivable from what is published:
    # the shortfall of such a group is stated as the whole of minSamples.
    return min_samples if is_small(n) else min_samples - n


def _intrinsic_times(slo: Slo, eligible: list[int], overall_n: int) -> list[float]:
    """Each comparison's outcomes per group, for the z of the sequential boundary."""
    if not eligible:
        return [0.0]
    if slo.comparison == "floor":
        return [float(n) for n in eligible]
    if slo.reference == OVERALL:
        return [effective_outcomes(n, max(overall_n - n, 0)) or float(n) for n in eligible]
    ordered = sorted(eligible)
    # The smallest pair decides the widest boundary among pairs of the eligible groups.
    pairs = [effective_outcomes(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :]]
    return pairs or [float(ordered[0])]


def _confident_margin(slo: Slo, c: GroupComparison) -> float:
    """How far the interval lies past the threshold (> 0 means a confident breach)."""
    return slo.compared.interval_past(c.lower, c.upper)


def _scale(slo: Slo, value: float) -> float:
    return slo.compared.scale(value)


def _within(slo: Slo, c: GroupComparison) -> bool:
    return slo.compared.within(_scale(slo, c.lower), _scale(slo, c.upper))


def _point_margin(slo: Slo, c: GroupComparison) -> float:
    """How far the point estimate is past (> 0) or within (< 0) the threshold."""
    return slo.compared.distance_past(c.estimate)


def _largest(slo: Slo, ready: list[GroupComparison]) -> Gap | None:
    """The comparison with the largest estimated disparity (lowest value for floor)."""
    if not ready:
        return None
    c = max(ready, key=lambda c: _point_margin(slo, c))
    return Gap(
        c.group, c.reference, c.estimate, c.group_value, c.reference_value, c.n, c.reference_n
    )


def _needed(slo: Slo, judgement: _Judgement) -> int | None:
    """More outcomes per group (of the smaller side of the slowest comparison)
    that would decide every undecided comparison at the current rates."""
    needed = judgement.shortfall
    for c in judgement.ready:
        if _within(slo, c) or slo.compared.past(_scale(slo, c.lower), _scale(slo, c.upper)):
            continue
        scale = scale_to_decide(
            slo.compared,
            _scale(slo, c.estimate),
            _scale(slo, c.lower),
            _scale(slo, c.upper),
            judgement.z_at,
        )
        if scale is None:
            return None
        sides = [c.n] if c.reference_n is None or c.reference == OVERALL else [c.n, c.reference_n]
        needed = max(needed, math.ceil((scale - 1.0) * min(sides)))
    return needed


def _undecided(slo: Slo, judgement: _Judgement) -> SloVerdict:
    """The verdict when no breach is confident: Met if demonstrated, else Inconclusive."""
    evidence = judgement.evidence
    if judgement.met and not judgement.ready:
        # maxGap over a single declared group: nothing can differ.
        message = f"{slo.name}: {slo.attribute} has one declared group, so there is no gap"
        return SloVerdict(slo.name, Verdict.MET, "WithinThreshold", message, evidence)
    if judgement.met:
        closest = max(judgement.ready, key=lambda c: _bound_margin(slo, c))
        return _verdict(
            slo,
            Verdict.MET,
            "WithinThreshold",
            closest,
            judgement,
            f"every comparison's interval lies within the threshold {slo.threshold:g}",
        )
    needed = _needed(slo, judgement)
    evidence = replace(evidence, outcomes_needed=needed)
    judgement = replace(judgement, evidence=evidence)
    more = _more(needed, evidence.outcome_unit)
    if judgement.insufficient:
        message = (
            f"{slo.name}: {slo.attribute} groups {', '.join(judgement.insufficient)} have fewer "
            f"than {slo.min_samples} {evidence.outcome_unit} in the window; "
            + (
                f"at least {needed} more {evidence.outcome_unit} per group are needed"
                if needed is not None
                else more
            )
        )
        return SloVerdict(slo.name, Verdict.INCONCLUSIVE, "InsufficientSamples", message, evidence)
    if judgement.undefined:
        first = judgement.undefined[0]
        evidence = replace(
            evidence,
            group=first.group,
            reference=first.reference,
            n=first.n,
            reference_n=first.reference_n,
            outcomes_needed=None,
        )
        message = (
            f"{slo.name}: {slo.metric} cannot be compared for {slo.attribute} group "
            f"{first.group} (undefined, e.g. one class only or a zero reference)"
        )
        return SloVerdict(slo.name, Verdict.INCONCLUSIVE, "MetricUndefined", message, evidence)
    open_ = [c for c in judgement.ready if not _within(slo, c)]
    worst = max(open_, key=lambda c: _point_margin(slo, c))
    if _point_margin(slo, worst) > 0.0:
        reason, tail = "BreachNotConfirmed", "past the threshold, but the interval includes it"
    else:
        reason, tail = "NotDemonstrated", "within the threshold, but the interval includes it"
    return _verdict(slo, Verdict.INCONCLUSIVE, reason, worst, judgement, f"{tail}; {more}")


def _more(needed: int | None, unit: str) -> str:
    if needed is None:
        return "no number of outcomes decides it at the current rates"
    return f"about {needed} more {unit} per group would decide it at the current rates"


def _bound_margin(slo: Slo, c: GroupComparison) -> float:
    """How close the interval comes to the threshold from inside (0 = touching)."""
    return slo.compared.interval_reach(c.lower, c.upper)


def _verdict(
    slo: Slo, status: Verdict, reason: str, c: GroupComparison, judgement: _Judgement, tail: str
) -> SloVerdict:
    upper: float | None = None if math.isinf(c.upper) else c.upper
    evidence = replace(
        judgement.evidence,
        group=c.group,
        reference=c.reference,
        estimate=c.estimate,
        interval=(c.lower, upper),
        group_value=c.group_value,
        reference_value=c.reference_value,
        n=c.n,
        reference_n=c.reference_n,
    )
    level = _level(evidence.confidence)
    bound = f"{c.lower:.3f} to {'unbounded' if upper is None else f'{upper:.3f}'}"
    largest = evidence.largest
    if slo.comparison == "maxGap":
        what = f"{c.group} vs {c.reference} differ by {c.estimate:.3f} ({level} interval {bound})"
        if largest is not None:
            what = (
                f"the largest {slo.metric} gap between {slo.attribute} groups is "
                f"{largest.estimate:.3f} ({largest.group} vs {largest.reference}); "
                f"{_role(reason)} {what}"
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
    if largest is not None and slo.comparison != "maxGap" and largest.group != c.group:
        what += f"; the largest disparity is {slo.attribute} group {largest.group}"
    return SloVerdict(slo.name, status, reason, f"{slo.name}: {what}; {tail}", evidence)


def _level(confidence: float) -> str:
    """A confidence as a percentage with the digits that keep it below 100%."""
    for digits in range(4, 12):
        text = f"{100 * confidence:.{digits}g}"
        if float(text) < 100.0:
            return f"{text}%"
    return f"{100 * confidence:.12g}%"


def _role(reason: str) -> str:
    if reason in ("ThresholdExceeded", "BreachPending"):
        return "the most confident breach:"
    if reason == "WithinThreshold":
        return "the closest to the threshold:"
    return "the furthest from a verdict:"
