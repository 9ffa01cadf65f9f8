"""Met means demonstrated, and the planner says how many outcomes would decide."""

from __future__ import annotations

import math

import numpy as np
import pytest
from equiguard.engine.comparison import Comparison
from equiguard.engine.monitoring import DEFAULT_PLAN, MonitoringPlan
from equiguard.engine.planner import normal_outcomes_per_group, scale_to_decide
from equiguard.engine.slo import SloState, evaluate_slo
from equiguard.engine.spec import Attribute, Slo, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from statsmodels.stats.power import NormalIndPower

LAYOUT = CellLayout.from_spec(
    Subgroups(attributes=(Attribute("race", values=("White", "Black")),), intersections=())
)
GAP = Slo(
    name="tpr-gap-race",
    metric="tpr",
    attribute="race",
    comparison="maxGap",
    reference=None,
    threshold=0.10,
    window_seconds=7 * 86400.0,
    min_samples=50,
    confidence=0.95,
    consecutive_breaches=1,
    action="Alert",
)


def two_groups(white: tuple[int, int], black: tuple[int, int]) -> Statistics:
    """Statistics of two groups given as (true positives, positives)."""
    races, scores, labels = [], [], []
    for name, (tp, positives) in (("White", white), ("Black", black)):
        races += [name] * positives
        scores += [0.9] * tp + [0.1] * (positives - tp)
        labels += [1] * positives
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    stats.update(LAYOUT.assign({"race": races}, len(races)), np.array(scores), np.array(labels))
    return stats


def at_rates(white: float, black: float, positives: int) -> Statistics:
    return two_groups((round(white * positives), positives), (round(black * positives), positives))


@pytest.mark.parametrize("power", [0.5, 0.8, 0.9])
@pytest.mark.parametrize(
    ("p1", "p2", "margin"), [(0.8, 0.77, 0.07), (0.6, 0.6, 0.1), (0.3, 0.2, 0.05)]
)
def test_the_normal_sample_size_equals_statsmodels(
    p1: float, p2: float, margin: float, power: float
) -> None:
    effect = margin / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    expected = NormalIndPower().solve_power(
        effect_size=effect, alpha=0.025, power=power, ratio=1.0, alternative="larger"
    )
    assert normal_outcomes_per_group(p1, p2, margin, 0.025, power) == pytest.approx(expected)


def test_a_gap_within_the_threshold_is_not_met_until_its_interval_is() -> None:
    verdict, _ = evaluate_slo(GAP, at_rates(0.80, 0.77, 150), SloState(), 0.0, plan=None)
    assert (verdict.status, verdict.reason) == ("Inconclusive", "NotDemonstrated")
    assert verdict.evidence.outcomes_needed is not None
    assert "more positives per group would decide it" in verdict.message


def test_the_planned_outcomes_agree_with_the_normal_sample_size() -> None:
    # At power 0.5 the planner's answer is where the expected interval touches the threshold.
    verdict, _ = evaluate_slo(GAP, at_rates(0.80, 0.77, 200), SloState(), 0.0, plan=None)
    needed = verdict.evidence.outcomes_needed
    assert needed is not None
    textbook = normal_outcomes_per_group(0.80, 0.77, 0.10 - 0.03, 0.025, 0.5)
    assert 200 + needed == pytest.approx(textbook, rel=0.04)


@pytest.mark.parametrize("plan", [None, DEFAULT_PLAN])
def test_the_planned_outcomes_decide_at_the_current_rates(plan: MonitoringPlan | None) -> None:
    start = 200
    verdict, _ = evaluate_slo(GAP, at_rates(0.80, 0.76, start), SloState(), 0.0, plan=plan)
    needed = verdict.evidence.outcomes_needed
    assert verdict.status == "Inconclusive" and needed is not None and needed > 0
    planned = start + needed
    # A few outcomes short of the plan, it is still undecided; a few past it, Met.
    short, _ = evaluate_slo(GAP, at_rates(0.80, 0.76, round(planned * 0.97)), SloState(), 0, plan)
    enough, _ = evaluate_slo(GAP, at_rates(0.80, 0.76, round(planned * 1.03)), SloState(), 0, plan)
    assert short.status == "Inconclusive"
    assert enough.status == "Met"


def test_a_breach_not_yet_confirmed_also_says_how_many_outcomes_would_confirm_it() -> None:
    verdict, _ = evaluate_slo(GAP, at_rates(0.80, 0.62, 80), SloState(), 0.0, plan=DEFAULT_PLAN)
    assert verdict.reason == "BreachNotConfirmed"
    needed = verdict.evidence.outcomes_needed
    assert needed is not None
    confirmed, _ = evaluate_slo(
        GAP, at_rates(0.80, 0.62, round((80 + needed) * 1.05)), SloState(), 0.0, DEFAULT_PLAN
    )
    assert confirmed.status == "Violated"


def test_an_estimate_on_the_threshold_cannot_be_decided_by_more_outcomes() -> None:
    assert scale_to_decide(Comparison("maxGap", 0.1), 0.1, 0.05, 0.15, lambda k: 2.0) is None
    gap = Comparison("maxGap", 0.1)
    assert scale_to_decide(gap, 0.0, -0.2, 0.2, lambda k: 2.0) == pytest.approx(4.0)


def test_insufficient_samples_say_how_many_are_missing_without_revealing_a_small_count() -> None:
    verdict, _ = evaluate_slo(GAP, two_groups((400, 500), (30, 40)), SloState(), 0.0, plan=None)
    assert verdict.reason == "InsufficientSamples"
    assert verdict.evidence.outcomes_needed == 10
    small, _ = evaluate_slo(GAP, two_groups((400, 500), (3, 4)), SloState(), 0.0, plan=None)
    assert small.evidence.outcomes_needed == 50  # not 46, which would reveal the 4


def test_the_message_names_the_largest_gap_and_the_most_confident_breach() -> None:
    layout = CellLayout.from_spec(
        Subgroups(attributes=(Attribute("race", values=("A", "B", "C")),), intersections=())
    )
    races, scores, labels = [], [], []
    # A-C is the largest gap (0.55) but on few positives; A-B (0.45) is the most confident.
    for name, tp, positives in (("A", 950, 1000), ("B", 500, 1000), ("C", 24, 60)):
        races += [name] * positives
        scores += [0.9] * tp + [0.1] * (positives - tp)
        labels += [1] * positives
    stats = Statistics.empty(layout.cells, 0.5)
    stats.update(layout.assign({"race": races}, len(races)), np.array(scores), np.array(labels))
    verdict, _ = evaluate_slo(GAP, stats, SloState(), 0.0, plan=None)
    assert verdict.status == "Violated"
    largest = verdict.evidence.largest
    assert largest is not None
    assert (largest.group, largest.reference, round(largest.estimate, 2)) == ("C", "A", 0.55)
    assert (verdict.evidence.group, verdict.evidence.reference) == ("B", "A")
    assert "the largest tpr gap between race groups is 0.550 (C vs A)" in verdict.message
    assert "the most confident breach: B vs A differ by 0.450" in verdict.message
