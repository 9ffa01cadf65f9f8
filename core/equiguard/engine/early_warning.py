"""The early-warning assessment: shift signals and watched estimates, on one budget.

Pure, over plain arguments: the current epochs' `ScoreStatistics` (oldest
first, `monitoring.epoch_spans` of the warning window), the reference's
labelled `Statistics`, the signals chosen and the watched estimates. A
watched estimate is breached when

- `maxGap`: for some pair of the attribute's groups, the MOVER interval of
  the difference of their estimated rates lies past the threshold;
- `floor`: some group's estimated rate has its upper bound below it;

each interval at the sequential z (`monitoring.mixture_z`) of its share of
the budget, at the smallest predicted count among the attribute's groups
that are compared. The false-alarm budget is split evenly between the shift
signals (one family, `shift.evaluate_shifts` spends it over every signal,
cell, cut and epoch) and each watched estimate (one family each, spent over
its pairs or groups and the epochs of the horizon), so the whole warning
keeps the model's budget by a union bound. The shift family always counts
every signal's tests, chosen or not, which is conservative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from equiguard.engine.estimation import GroupEstimate, RateEstimate, estimate_rates
from equiguard.engine.intervals import mover_difference
from equiguard.engine.monitoring import DEFAULT_PLAN, MonitoringPlan, comparison_alpha, mixture_z
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import SIGNALS, ShiftSignal, evaluate_shifts
from equiguard.engine.spec import UNKNOWN
from equiguard.engine.stats import Statistics

# Why a watched estimate could not be judged.
TOO_FEW_GROUPS = "TooFewEstimatedGroups"


@dataclass(frozen=True)
class Watched:
    """A labelled SLO watched on its label-free estimate (`contracts.early_warning`)."""

    name: str
    metric: str  # tpr | fpr | ppv | selectionRate
    attribute: str
    comparison: str  # maxGap | floor
    threshold: float


@dataclass(frozen=True)
class EstimateJudgement:
    """A watched estimate on one epoch, or over the epochs in use."""

    watched: Watched
    breached: bool
    judged: bool  # False: fewer than the comparison needs were estimated
    reason: str  # why not judged ("" when judged)
    groups: tuple[str, ...]  # the decisive pair (maxGap) or group (floor)
    estimate: float | None  # the gap or the group's rate
    lower: float | None
    upper: float | None
    n: int  # the smallest predicted count of the groups compared


@dataclass(frozen=True)
class Assessment:
    """What the early warning found on the epochs in use."""

    signals: tuple[ShiftSignal, ...]  # the chosen signals that shifted
    judgements: tuple[EstimateJudgement, ...]  # one per watched estimate
    estimates: tuple[GroupEstimate, ...]  # every cell's estimates on the oldest epoch
    tested: int = 0  # chosen signal tests that had enough predictions to be made

    @property
    def warning(self) -> bool:
        return bool(self.signals) or any(j.breached for j in self.judgements)


def attribute_groups(cells: Sequence[tuple[str, str]], attribute: str) -> list[str]:
    """The groups of `attribute` an estimate compares (the unknown group never is)."""
    return [g for d, g in cells if d == attribute and g != UNKNOWN]


def comparisons_of(watched: Watched, groups: int) -> int:
    """The tests a watched estimate makes per epoch: pairs for maxGap, groups for floor."""
    count = groups * (groups - 1) // 2 if watched.comparison == "maxGap" else groups
    return max(count, 1)


def family_budget(false_alarm: float, signals: bool, watched: int) -> float:
    """Each family's share of the budget: the shift signals (if any) and each estimate."""
    families = int(signals) + watched
    return false_alarm / max(families, 1)


def judge_estimate(
    current: ScoreStatistics,
    reference: Statistics,
    watched: Watched,
    alpha: float,
    plan: MonitoringPlan = DEFAULT_PLAN,
    min_samples: int = 50,
    min_outcomes: int = 50,
) -> EstimateJudgement:
    """One watched estimate on one epoch's statistics, each comparison at `alpha`."""
    totals = current.counts.sum(axis=1)
    rows = {
        g: i
        for i, (d, g) in enumerate(current.cells)
        if d == watched.attribute and g != UNKNOWN and totals[i] >= min_samples
    }
    if not rows:
        return _unjudged(watched, 0)
    n = int(min(totals[i] for i in rows.values()))
    z = mixture_z(alpha, n, plan.tuning_outcomes)
    found = estimate_rates(current, reference, z=z, min_outcomes=min_outcomes)
    rates = {
        e.group: e.rates[watched.metric]
        for e in found
        if e.dimension == watched.attribute and e.group in rows and watched.metric in e.rates
    }
    rates = {g: r for g, r in rates.items() if math.isfinite(r.value)}
    if watched.comparison == "floor":
        return _floor(watched, rates, n)
    return _max_gap(watched, rates, n)


def _floor(watched: Watched, rates: dict[str, RateEstimate], n: int) -> EstimateJudgement:
    if not rates:
        return _unjudged(watched, n)
    # The group most confidently below the floor: the lowest upper bound.
    group = min(rates, key=lambda g: rates[g].upper)
    rate = rates[group]
    return EstimateJudgement(
        watched,
        breached=rate.upper < watched.threshold,
        judged=True,
        reason="",
        groups=(group,),
        estimate=rate.value,
        lower=rate.lower,
        upper=rate.upper,
        n=n,
    )


def _max_gap(watched: Watched, rates: dict[str, RateEstimate], n: int) -> EstimateJudgement:
    if len(rates) < 2:
        return _unjudged(watched, n)
    best: tuple[float, EstimateJudgement] | None = None
    for g1, g2 in combinations(sorted(rates), 2):
        r1, r2 = rates[g1], rates[g2]
        interval = mover_difference(r1.value, r1.lower, r1.upper, r2.value, r2.lower, r2.upper)
        lower, upper = float(interval[0]), float(interval[1])
        gap = r1.value - r2.value
        if gap < 0:  # report the pair with the higher group first
            g1, g2, gap, lower, upper = g2, g1, -gap, -upper, -lower
        # How far past the threshold the bound is: positive when breached.
        distance = lower - watched.threshold
        judgement = EstimateJudgement(
            watched, distance > 0, True, "", (g1, g2), gap, lower, upper, n
        )
        if best is None or distance > best[0]:
            best = (distance, judgement)
    assert best is not None
    return best[1]


def _unjudged(watched: Watched, n: int) -> EstimateJudgement:
    return EstimateJudgement(watched, False, False, TOO_FEW_GROUPS, (), None, None, None, n)


def assess(
    epochs: Sequence[ScoreStatistics],
    reference: Statistics,
    signals: Sequence[str],
    watched: Sequence[Watched],
    false_alarm: float,
    window_seconds: float,
    plan: MonitoringPlan = DEFAULT_PLAN,
    min_samples: int = 50,
    min_outcomes: int = 50,
) -> Assessment:
    """The early warning over the epochs in use (oldest first), on one false-alarm budget.

    A signal or estimate counts as fired if it fired in any epoch; the epoch
    reported is the first that fired, else the oldest.
    """
    if not epochs:
        raise ValueError("assess needs the score statistics of at least one epoch")
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown:
        raise ValueError(f"unknown signal {unknown[0]!r}")
    share = family_budget(false_alarm, bool(signals), len(watched))
    fired: tuple[ShiftSignal, ...] = ()
    tested = 0
    if signals:
        found = evaluate_shifts(
            epochs, ScoreStatistics.of_labelled(reference), share, window_seconds, plan,
            min_samples,
        )  # fmt: skip
        chosen_signals = [s for s in found if s.signal in signals]
        fired = tuple(s for s in chosen_signals if s.shifted)
        tested = sum(s.current is not None for s in chosen_signals)
    judgements = []
    for item in watched:
        groups = len(attribute_groups(reference.cells, item.attribute))
        alpha = comparison_alpha(share, comparisons_of(item, groups), window_seconds, plan)
        chosen: EstimateJudgement | None = None
        for stats in epochs:
            judged = judge_estimate(stats, reference, item, alpha, plan, min_samples, min_outcomes)
            if chosen is None or (judged.breached and not chosen.breached):
                chosen = judged
            if chosen.breached:
                break
        assert chosen is not None
        judgements.append(chosen)
    estimates = tuple(estimate_rates(epochs[0], reference, min_outcomes=min_outcomes))
    return Assessment(fired, tuple(judgements), estimates, tested)
