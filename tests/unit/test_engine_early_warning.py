"""The early-warning assessment: shifts and watched estimates judged on one shared budget."""

from __future__ import annotations

import numpy as np
import pytest
from equiguard.engine.early_warning import (
    TOO_FEW_GROUPS,
    Watched,
    assess,
    comparisons_of,
    family_budget,
    judge_estimate,
)
from equiguard.engine.estimation import estimate_rates
from equiguard.engine.intervals import mover_difference
from equiguard.engine.monitoring import DEFAULT_PLAN, comparison_alpha, mixture_z
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import evaluate_shifts
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout

GROUPS = ("A", "B", "C")
LAYOUT = CellLayout.from_spec(Subgroups((Attribute("group", values=GROUPS),), ()))
THRESHOLD = 0.3
WEEK = 7 * 86400.0
TPR_GAP = Watched("tpr-gap", "tpr", "group", "maxGap", 0.10)
TPR_FLOOR = Watched("tpr-floor", "tpr", "group", "floor", 0.80)


def rows(rng: np.random.Generator, n: int, c_score_a: float = 2.0) -> tuple[np.ndarray, ...]:
    group = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    scores = np.where(group == 2, rng.beta(c_score_a, 5.0, n), rng.beta(2.0, 5.0, n))
    labels = (rng.random(n) < scores).astype(np.int64)
    return LAYOUT.assign({"group": [GROUPS[g] for g in group]}, n), scores, labels


def reference(rng: np.random.Generator, n: int = 60000) -> Statistics:
    cells, scores, labels = rows(rng, n)
    stats = Statistics.empty(LAYOUT.cells, THRESHOLD)
    stats.update(cells, scores, labels)
    return stats


def current(rng: np.random.Generator, n: int, c_score_a: float = 2.0) -> ScoreStatistics:
    cells, scores, _ = rows(rng, n, c_score_a)
    stats = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
    stats.update(cells, scores)
    return stats


def test_a_gap_is_breached_when_the_mover_interval_of_two_estimates_lies_past_it() -> None:
    rng = np.random.default_rng(3)
    ref, now = reference(rng), current(rng, 20000, c_score_a=4.0)
    alpha = comparison_alpha(0.01, 3, WEEK, DEFAULT_PLAN)
    judged = judge_estimate(now, ref, TPR_GAP, alpha)
    # By hand: the estimates at the z of the smallest group, the pair's MOVER interval.
    totals = now.counts.sum(axis=1)
    n = min(int(totals[LAYOUT.cell_index("group", g)]) for g in GROUPS)
    z = mixture_z(alpha, n, DEFAULT_PLAN.tuning_outcomes)
    tpr = {e.group: e.rates["tpr"] for e in estimate_rates(now, ref, z=z) if e.group in GROUPS}
    high, low = judged.groups
    lower, upper = mover_difference(
        tpr[high].value, tpr[high].lower, tpr[high].upper,
        tpr[low].value, tpr[low].lower, tpr[low].upper,
    )  # fmt: skip
    assert judged.breached and judged.judged and judged.n == n
    assert high == "C"
    assert judged.lower == pytest.approx(float(lower)) and judged.upper == pytest.approx(upper)
    assert judged.estimate == pytest.approx(tpr[high].value - tpr[low].value)
    assert judged.lower > 0.10


def test_no_gap_is_breached_when_nothing_changed() -> None:
    rng = np.random.default_rng(4)
    ref, now = reference(rng), current(rng, 20000)
    judged = judge_estimate(now, ref, TPR_GAP, comparison_alpha(0.01, 3, WEEK, DEFAULT_PLAN))
    assert judged.judged and not judged.breached
    assert judged.lower is not None and judged.lower <= 0.10


def test_a_floor_is_breached_when_a_groups_upper_bound_is_below_it() -> None:
    rng = np.random.default_rng(5)
    ref, now = reference(rng), current(rng, 20000)
    judged = judge_estimate(now, ref, TPR_FLOOR, comparison_alpha(0.01, 3, WEEK, DEFAULT_PLAN))
    # Beta(2, 5) scores at threshold 0.3 give a tpr near 0.65 in every group.
    assert judged.breached and judged.upper is not None and judged.upper < 0.80
    relaxed = Watched("tpr-floor", "tpr", "group", "floor", 0.5)
    assert not judge_estimate(now, ref, relaxed, 1e-4).breached


def test_an_estimate_with_too_few_predictions_in_its_groups_is_not_judged() -> None:
    rng = np.random.default_rng(6)
    judged = judge_estimate(current(rng, 60), reference(rng), TPR_GAP, 1e-4, min_samples=50)
    assert not judged.judged and not judged.breached and judged.reason == TOO_FEW_GROUPS


def test_the_budget_is_split_between_the_shift_signals_and_each_watched_estimate() -> None:
    assert family_budget(0.01, True, 1) == pytest.approx(0.005)
    assert family_budget(0.01, False, 2) == pytest.approx(0.005)
    assert family_budget(0.01, True, 0) == pytest.approx(0.01)
    assert comparisons_of(TPR_GAP, 3) == 3 and comparisons_of(TPR_FLOOR, 3) == 3
    assert comparisons_of(TPR_GAP, 5) == 10


def test_assess_reports_the_chosen_signals_at_their_share_of_the_budget() -> None:
    rng = np.random.default_rng(7)
    ref, now = reference(rng), current(rng, 20000, c_score_a=4.0)
    found = assess([now], ref, ("flagRate",), [TPR_GAP], 0.01, WEEK)
    expected = evaluate_shifts([now], ScoreStatistics.of_labelled(ref), 0.005, WEEK)
    fired = [s for s in expected if s.shifted and s.signal == "flagRate"]
    assert [(s.dimension, s.group) for s in found.signals] == [
        (s.dimension, s.group) for s in fired
    ]
    assert ("group", "C") in {(s.dimension, s.group) for s in found.signals}
    assert found.warning and found.judgements[0].breached


def test_assess_is_clear_when_nothing_changed() -> None:
    rng = np.random.default_rng(8)
    ref = reference(rng)
    epochs = [current(rng, 20000), current(rng, 8000)]
    found = assess(epochs, ref, ("flagRate", "scoreDistribution"), [TPR_GAP], 0.01, WEEK)
    assert not found.warning and not found.signals
    assert found.judgements[0].judged


def test_assess_refuses_an_unknown_signal() -> None:
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="unknown signal 'vibes'"):
        assess([current(rng, 100)], reference(rng, 1000), ("vibes",), [], 0.01, WEEK)
