"""One small test per verdict branch, plus the state and the monitoring level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from equiguard.engine.monitoring import (
    DEFAULT_PLAN,
    MonitoringPlan,
    comparison_alpha,
    epoch_spans,
    mixture_z,
)
from equiguard.engine.slo import SloState, evaluate_slo, evaluate_slos
from equiguard.engine.spec import Attribute, Slo, Subgroups
from equiguard.engine.stats import Statistics, sum_statistics
from equiguard.engine.subgroups import CellLayout

LAYOUT = CellLayout.from_spec(
    Subgroups(attributes=(Attribute("race", values=("White", "Black", "Asian")),), intersections=())
)
TPR_GAP = Slo(
    name="tpr-gap-race",
    metric="tpr",
    attribute="race",
    comparison="maxGap",
    reference=None,
    threshold=0.10,
    window_seconds=7 * 86400.0,
    min_samples=50,
    confidence=0.95,
    consecutive_breaches=2,
    action="Rollback",
)
DAY = 86400.0


def rows(
    group: str, tp: int = 0, fn: int = 0, fp: int = 0, tn: int = 0
) -> tuple[list[str], list[float], list[int]]:
    """Rows of one group with the given confusion counts (threshold 0.5)."""
    scores = [0.9] * tp + [0.1] * fn + [0.9] * fp + [0.1] * tn
    labels = [1] * (tp + fn) + [0] * (fp + tn)
    return [group] * len(scores), scores, labels


def statistics(*groups: tuple[list[str], list[float], list[int]]) -> Statistics:
    races = [r for g in groups for r in g[0]]
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    stats.update(
        LAYOUT.assign({"race": races}, len(races)),
        np.array([s for g in groups for s in g[1]]),
        np.array([label for g in groups for label in g[2]]),
    )
    return stats


def tpr_groups(white: float, black: float, asian: float, positives: int = 1000) -> Statistics:
    def group(name: str, tpr: float, n: int) -> tuple[list[str], list[float], list[int]]:
        return rows(name, tp=round(tpr * n), fn=n - round(tpr * n), fp=n // 4, tn=n)

    return statistics(
        group("White", white, positives),
        group("Black", black, positives),
        group("Asian", asian, positives),
    )


def test_met_when_every_group_has_samples_and_the_gap_is_within_the_threshold() -> None:
    verdict, state = evaluate_slo(TPR_GAP, tpr_groups(0.80, 0.78, 0.79), SloState(), now=DAY)
    assert (verdict.status, verdict.reason) == ("Met", "WithinThreshold")
    assert verdict.evidence.estimate == pytest.approx(0.02)
    assert state == SloState(0, None, None, DAY)


def test_rolls_back_only_after_the_declared_consecutive_confident_breaches() -> None:
    stats = tpr_groups(0.90, 0.60, 0.88)
    first, state = evaluate_slo(TPR_GAP, stats, SloState(), now=DAY)
    assert (first.status, first.reason) == ("Inconclusive", "BreachPending")
    second, state = evaluate_slo(TPR_GAP, stats, state, now=DAY + 60)
    assert (second.status, second.reason) == ("Violated", "ThresholdExceeded")
    assert state == SloState(2, DAY, DAY + 60, DAY + 60)
    evidence = second.evidence
    assert (evidence.group, evidence.reference) == ("Black", "White")
    assert evidence.estimate == pytest.approx(0.30)
    assert evidence.interval is not None and evidence.interval[0] > 0.10
    assert (evidence.n, evidence.reference_n) == (1000, 1000)
    assert evidence.confidence > 0.999  # the monitoring correction at work


def test_the_consecutive_count_restarts_after_an_evaluation_without_breach() -> None:
    _, state = evaluate_slo(TPR_GAP, tpr_groups(0.90, 0.60, 0.88), SloState(), now=DAY)
    _, state = evaluate_slo(TPR_GAP, tpr_groups(0.80, 0.79, 0.80), state, now=DAY + 60)
    verdict, state = evaluate_slo(TPR_GAP, tpr_groups(0.90, 0.60, 0.88), state, now=DAY + 120)
    assert verdict.reason == "BreachPending" and state.consecutive_breaches == 1


def test_inconclusive_when_a_group_has_too_few_positives() -> None:
    stats = statistics(
        rows("White", tp=400, fn=100), rows("Black", tp=20, fn=5), rows("Asian", tp=300, fn=80)
    )
    verdict, _ = evaluate_slo(TPR_GAP, stats, SloState(), now=DAY)
    assert (verdict.status, verdict.reason) == ("Inconclusive", "InsufficientSamples")
    assert verdict.evidence.insufficient == ("Black",)
    assert "fewer than 50 positives" in verdict.message


def test_a_confident_breach_counts_even_when_another_group_lacks_samples() -> None:
    stats = statistics(
        rows("White", tp=900, fn=100), rows("Black", tp=600, fn=400), rows("Asian", tp=5, fn=5)
    )
    verdict, _ = evaluate_slo(TPR_GAP, stats, SloState(), now=DAY, plan=None)
    assert verdict.status == "Violated" and verdict.evidence.insufficient == ("Asian",)


def test_inconclusive_when_the_estimate_is_past_the_threshold_but_the_bound_is_not() -> None:
    verdict, state = evaluate_slo(
        TPR_GAP, tpr_groups(0.80, 0.65, 0.80, positives=60), SloState(), now=DAY
    )
    assert (verdict.status, verdict.reason) == ("Inconclusive", "BreachNotConfirmed")
    assert verdict.evidence.estimate == pytest.approx(0.15, abs=0.01)
    assert state.consecutive_breaches == 0


def test_inconclusive_when_the_metric_is_undefined_for_a_group_with_samples() -> None:
    auroc_floor = replace(
        TPR_GAP, name="auroc-floor", metric="auroc", comparison="floor", threshold=0.6
    )
    stats = statistics(
        rows("White", tp=80, fn=20, fp=20, tn=80),
        rows("Black", tp=70, fn=30),
        rows("Asian", tp=50, fn=20, fp=20, tn=70),
    )
    verdict, _ = evaluate_slo(auroc_floor, stats, SloState(), now=DAY)
    assert (verdict.status, verdict.reason) == ("Inconclusive", "MetricUndefined")
    assert verdict.evidence.group == "Black"


def test_a_one_off_audit_violates_on_the_first_confident_breach() -> None:
    verdict, _ = evaluate_slo(TPR_GAP, tpr_groups(0.90, 0.60, 0.88), SloState(), now=0.0, plan=None)
    assert verdict.status == "Violated"
    # Three pairs, each two-sided: Bonferroni gives every interval 1 - 0.05 / 3.
    assert verdict.evidence.confidence == pytest.approx(1 - 0.05 / 3, abs=1e-9)


def test_floor_is_violated_when_a_groups_upper_bound_is_below_it() -> None:
    floor = replace(TPR_GAP, name="tpr-floor", comparison="floor", threshold=0.75)
    verdict, _ = evaluate_slo(floor, tpr_groups(0.90, 0.60, 0.88), SloState(), now=0.0, plan=None)
    assert verdict.status == "Violated" and verdict.evidence.group == "Black"
    assert verdict.evidence.reference is None
    assert verdict.evidence.interval is not None and verdict.evidence.interval[1] < 0.75


def test_ratio_to_overall_flags_a_group_selected_far_less_often() -> None:
    ratio = replace(
        TPR_GAP,
        name="selection-ratio",
        metric="selectionRate",
        comparison="ratioToReference",
        reference="overall",
        threshold=0.8,
    )
    stats = statistics(
        rows("White", tp=300, fp=300, tn=400),
        rows("Black", tp=100, fp=100, tn=800),
        rows("Asian", tp=300, fp=250, tn=450),
    )
    verdict, _ = evaluate_slo(ratio, stats, SloState(), now=0.0, plan=None)
    assert verdict.status == "Violated" and verdict.evidence.group == "Black"
    assert verdict.evidence.estimate == pytest.approx(0.2 / (1350 / 3000))
    assert verdict.evidence.interval is not None and verdict.evidence.interval[1] < 0.8


def test_gap_to_a_named_reference_group_and_to_the_best_group() -> None:
    gap = replace(TPR_GAP, name="gap-white", comparison="gapToReference", reference="White")
    verdict, _ = evaluate_slo(gap, tpr_groups(0.90, 0.60, 0.88), SloState(), now=0.0, plan=None)
    assert (verdict.evidence.group, verdict.evidence.reference) == ("Black", "White")
    assert verdict.evidence.estimate == pytest.approx(-0.30)
    best = replace(gap, reference="best")
    verdict, _ = evaluate_slo(best, tpr_groups(0.70, 0.60, 0.88), SloState(), now=0.0, plan=None)
    assert verdict.status == "Violated" and verdict.evidence.reference == "Asian"


def test_gap_to_overall_compares_a_group_with_everyone_else() -> None:
    gap = replace(TPR_GAP, name="gap-overall", comparison="gapToReference", reference="overall")
    verdict, _ = evaluate_slo(gap, tpr_groups(0.80, 0.80, 0.80), SloState(), now=0.0, plan=None)
    assert verdict.status == "Met"
    assert verdict.evidence.interval is not None
    low, high = verdict.evidence.interval
    assert high is not None and low < 0.0 < high


def test_summed_pod_statistics_give_the_verdict_of_the_pooled_data() -> None:
    pods = [tpr_groups(0.90, 0.60, 0.88, positives=400), tpr_groups(0.88, 0.62, 0.9, positives=600)]
    pooled = statistics(
        *(
            rows(g, tp=t, fn=n - t)
            for g, t, n in (
                ("White", 360 + 528, 1000),
                ("Black", 240 + 372, 1000),
                ("Asian", 352 + 540, 1000),
            )
        )
    )
    summed_verdict, _ = evaluate_slo(TPR_GAP, sum_statistics(pods), SloState(), 0.0, plan=None)
    pooled_verdict, _ = evaluate_slo(TPR_GAP, pooled, SloState(), 0.0, plan=None)
    assert summed_verdict.evidence.estimate == pytest.approx(pooled_verdict.evidence.estimate)
    assert summed_verdict.status == pooled_verdict.status == "Violated"


def test_evaluate_slos_reads_each_window_once_and_carries_state() -> None:
    spans: list[float] = []

    def window(span: float) -> Statistics:
        spans.append(span)
        return tpr_groups(0.90, 0.60, 0.88)

    second = replace(TPR_GAP, name="tpr-floor", comparison="floor", threshold=0.5)
    now = 20 * DAY + 3600.0
    verdicts, states = evaluate_slos([TPR_GAP, second], window, {}, now=now)
    # Two epochs are in use, started at multiples of half the window: 3.5 d and 17.5 d.
    assert spans == [now - 14 * DAY, now - 17.5 * DAY]
    assert verdicts["tpr-gap-race"].reason == "BreachPending"
    assert states["tpr-gap-race"].consecutive_breaches == 1
    assert verdicts["tpr-floor"].status == "Met"


def test_state_survives_its_json_form() -> None:
    state = SloState(2, 100.0, 160.0, 160.0)
    assert SloState.from_dict(state.to_dict()) == state
    with pytest.raises(ValueError, match="consecutiveBreaches"):
        SloState.from_dict({"consecutiveBreaches": -1})


def test_verdict_json_has_the_documented_shape() -> None:
    verdict, state = evaluate_slo(TPR_GAP, tpr_groups(0.90, 0.60, 0.88), SloState(), now=DAY)
    entry = verdict.to_dict(state)
    assert set(entry) == {"verdict", "reason", "message", "evidence", "state"}
    assert set(entry["evidence"]) == {  # type: ignore[arg-type]
        "metric",
        "attribute",
        "comparison",
        "threshold",
        "group",
        "reference",
        "estimate",
        "interval",
        "groupValue",
        "referenceValue",
        "n",
        "referenceN",
        "confidence",
        "insufficient",
        "largestGap",
        "outcomesNeeded",
        "outcomeUnit",
        "spanSeconds",
        "suppressed",
    }


def test_monitoring_spends_the_error_over_epochs_comparisons_and_slos() -> None:
    week = 7 * DAY
    one_off = comparison_alpha(0.05, 2, week, None)
    month = comparison_alpha(0.05, 2, week, MonitoringPlan(horizon_seconds=30 * DAY))
    year = comparison_alpha(0.05, 2, week, MonitoringPlan(horizon_seconds=365 * DAY))
    assert one_off == pytest.approx(0.025)
    # 30 days in epochs of 3.5 days: 9 start within it, and 2 reach into it from before.
    assert month == pytest.approx(0.05 / (2 * 11))
    assert year < month
    default = comparison_alpha(0.05, 2, week, DEFAULT_PLAN)
    assert comparison_alpha(0.05, 2, week, DEFAULT_PLAN, slos=4) == pytest.approx(default / 4)


def test_epochs_reach_back_at_most_a_window_and_at_least_half_of_one() -> None:
    week = 7 * DAY
    for now in np.linspace(100 * week, 101 * week, 97)[1:]:
        spans = epoch_spans(float(now), week, DEFAULT_PLAN)
        assert 0 < len(spans) <= 2 and all(0 < s < week for s in spans)
        assert max(spans) >= week / 2


def test_the_mixture_boundary_matches_robbins_formula() -> None:
    # z^2 = (1 + rho/v) (2 ln(1/a) + ln(1 + v/rho)), at v = rho: 2 (2 ln 100 + ln 2).
    assert mixture_z(0.01, 50, 50.0) == pytest.approx(np.sqrt(2 * (2 * np.log(100) + np.log(2))))
    assert mixture_z(0.01, 10_000, 50.0) > mixture_z(0.01, 2_000, 50.0)  # grows like log v


def test_a_maxgap_breach_names_the_largest_gap_and_the_most_confident_one() -> None:
    # Asian vs White is the largest gap (0.28) but on 50 positives its bound is barely
    # past 0.10; Black vs White (0.20 on 1,000 each) is the most confident breach.
    stats = statistics(
        rows("White", tp=800, fn=200, fp=100, tn=400),
        rows("Black", tp=600, fn=400, fp=100, tn=400),
        rows("Asian", tp=26, fn=24, fp=10, tn=40),
    )
    verdict, _ = evaluate_slo(TPR_GAP, stats, SloState(), now=DAY, plan=None)
    assert verdict.status == "Violated"
    evidence = verdict.evidence
    assert (evidence.group, evidence.reference) == ("Black", "White")
    assert evidence.estimate == pytest.approx(0.20)
    assert evidence.largest is not None
    assert (evidence.largest.group, evidence.largest.reference) == ("Asian", "White")
    assert evidence.largest.estimate == pytest.approx(0.28)
    assert "the largest tpr gap between race groups is 0.280 (Asian vs White)" in verdict.message
    assert "the most confident breach: Black vs White differ by 0.200" in verdict.message
