"""Net benefit, the decision curve and the calibration intercept and slope per
group equal their references on the raw rows: net benefit through fairlearn's
MetricFrame exactly, the logistic recalibration through statsmodels within the
binning error docs/engine.md states."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from equiguard.engine.audit import curve_report
from equiguard.engine.intervals import z_value
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.spec import Attribute, SpecError, Subgroups, parse_slo
from equiguard.engine.stats import Statistics, sum_statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_small_cells
from equiguard.engine.utility import SCORE_CLIP, decision_curve
from fairlearn.metrics import MetricFrame

SUBGROUPS = Subgroups(attributes=(Attribute("race", values=("White", "Black", "Asian")),),
                      intersections=())  # fmt: skip
LAYOUT = CellLayout.from_spec(SUBGROUPS)
THRESHOLD = 0.3
GROUPS = ("White", "Black", "Asian")


def cohort(seed: int, n: int = 6000) -> pd.DataFrame:
    """Scores from a beta law; each group miscalibrated its own way."""
    rng = np.random.default_rng(seed)
    race = rng.choice(GROUPS, n, p=[0.5, 0.3, 0.2])
    score = rng.beta(2.0, 5.0, n)
    logit = np.log(score / (1 - score))
    intercept = pd.Series(race).map({"White": 0.0, "Black": 0.4, "Asian": -0.3}).to_numpy()
    slope = pd.Series(race).map({"White": 1.0, "Black": 0.7, "Asian": 1.3}).to_numpy()
    label = (rng.random(n) < 1 / (1 + np.exp(-(intercept + slope * logit)))).astype(int)
    return pd.DataFrame({"race": race, "score": score, "label": label})


def statistics(rows: pd.DataFrame, score_bins: int = 100) -> Statistics:
    stats = Statistics.empty(LAYOUT.cells, THRESHOLD, score_bins)
    cells = LAYOUT.assign({"race": rows["race"].to_numpy(dtype=object)}, len(rows))
    stats.update(cells, rows["score"].to_numpy(), rows["label"].to_numpy())
    return stats


def raw_net_benefit(y_true: np.ndarray, y_score: np.ndarray, threshold: float) -> float:
    treated = np.asarray(y_score) >= threshold
    y = np.asarray(y_true)
    tp, fp = np.sum(treated & (y == 1)), np.sum(treated & (y == 0))
    return float(tp / len(y) - fp / len(y) * threshold / (1 - threshold))


def frame(rows: pd.DataFrame, threshold: float) -> MetricFrame:
    def net_benefit(y_true: np.ndarray, y_score: np.ndarray) -> float:
        return raw_net_benefit(y_true, y_score, threshold)

    return MetricFrame(
        metrics=net_benefit,
        y_true=rows["label"],
        y_pred=rows["score"],
        sensitive_features=rows["race"],
    )


def logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, SCORE_CLIP, 1 - SCORE_CLIP)
    return np.log(clipped / (1 - clipped))


def test_net_benefit_at_the_decision_threshold_equals_the_raw_rows_per_group() -> None:
    rows = cohort(1)
    table = compute_metrics(statistics(rows))
    reference = frame(rows, THRESHOLD)
    assert table.overall("netBenefit") == pytest.approx(reference.overall, abs=1e-12)
    for group in GROUPS:
        assert table.value("netBenefit", "race", group) == pytest.approx(
            reference.by_group[group], abs=1e-12
        )
        low, high = table.interval("netBenefit", "race", group)  # type: ignore[misc]
        assert low < reference.by_group[group] < high


def test_the_decision_curve_equals_the_raw_rows_at_every_bin_edge() -> None:
    rows = cohort(2)
    stats = statistics(rows)
    thresholds = [k / 100 for k in range(5, 55, 5)]
    curve = decision_curve(stats, thresholds)
    rows_of = {cell: i for i, cell in enumerate(stats.cells)}
    prevalence = rows.groupby("race")["label"].mean()
    for column, threshold in enumerate(thresholds):
        reference = frame(rows, threshold)
        for group in GROUPS:
            row = rows_of[("race", group)]
            assert curve.model[row, column] == pytest.approx(reference.by_group[group], abs=1e-12)
            treat_all = prevalence[group] - (1 - prevalence[group]) * threshold / (1 - threshold)
            assert curve.treat_all[row, column] == pytest.approx(treat_all, abs=1e-12)


def test_a_decision_curve_threshold_off_the_bin_edges_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.123 is not an inner edge of the 100 score bins"):
        decision_curve(statistics(cohort(3, 200)), [0.123])


@pytest.mark.parametrize(("score_bins", "tolerance"), [(100, 3e-3), (400, 2e-4)])
def test_calibration_slope_and_intercept_equal_statsmodels_within_the_bin_error(
    score_bins: int, tolerance: float
) -> None:
    rows = cohort(4)
    table = compute_metrics(statistics(rows, score_bins), confidence=0.95)
    z = z_value(0.95)
    for group in GROUPS:
        part = rows[rows["race"] == group]
        x, y = logit(part["score"].to_numpy()), part["label"].to_numpy()
        slope_fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
        intercept_fit = sm.GLM(
            y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=x
        ).fit()
        slope = table.value("calibrationSlope", "race", group)
        assert slope == pytest.approx(slope_fit.params[1], abs=tolerance)
        low, high = table.interval("calibrationSlope", "race", group)  # type: ignore[misc]
        assert (high - low) / (2 * z) == pytest.approx(slope_fit.bse[1], rel=0.01)
        intercept = table.value("calibrationIntercept", "race", group)
        assert intercept == pytest.approx(intercept_fit.params[0], abs=tolerance)
        low, high = table.interval("calibrationIntercept", "race", group)  # type: ignore[misc]
        assert (high - low) / (2 * z) == pytest.approx(intercept_fit.bse[0], rel=0.01)


def test_calibration_of_summed_shards_equals_calibration_of_the_pooled_rows() -> None:
    rows = cohort(5)
    shards = [statistics(rows.iloc[i::3]) for i in range(3)]
    pooled, summed = compute_metrics(statistics(rows)), compute_metrics(sum_statistics(shards))
    for metric in ("netBenefit", "calibrationIntercept", "calibrationSlope"):
        for group in GROUPS:
            assert summed.value(metric, "race", group) == pytest.approx(
                pooled.value(metric, "race", group), abs=1e-9
            )


def test_calibration_of_a_group_with_one_class_only_is_undefined_not_zero() -> None:
    rows = cohort(6, 400)
    rows.loc[rows["race"] == "Asian", "label"] = 0
    table = compute_metrics(statistics(rows))
    assert table.value("calibrationSlope", "race", "Asian") is None
    assert table.value("calibrationIntercept", "race", "Asian") is None
    assert table.interval("calibrationSlope", "race", "Asian") is None
    assert table.value("calibrationSlope", "race", "White") is not None


def test_the_published_decision_curve_hides_points_from_which_a_small_count_follows() -> None:
    rows = cohort(7, 3000)
    stats = statistics(rows)
    curve = decision_curve(stats, [k / 100 for k in range(5, 95, 5)])
    report = suppress_small_cells({"metrics": metrics_report(compute_metrics(stats))}, LAYOUT)
    published = curve_report(curve, stats.cells, report["metrics"])
    white = published["groups"]["race"]["White"]["netBenefit"]
    # At high thresholds few rows are treated: such points leave as null ...
    assert None in white
    # ... and every point shown keeps each of its four counts, and its step from the
    # last point shown, outside 1 to 10.
    row = stats.cells.index(("race", "White"))
    positives = int(stats.histogram[row, 1].sum())
    negatives = int(stats.histogram[row, 0].sum())
    last = None
    for column, value in enumerate(white):
        if value is None:
            continue
        tp, fp = int(curve.tp[row, column]), int(curve.fp[row, column])
        counts = [tp, fp, positives - tp, negatives - fp]
        counts += [] if last is None else [last[0] - tp, last[1] - fp]
        assert not any(1 <= c <= 10 for c in counts)
        assert value == pytest.approx(curve.model[row, column])
        last = (tp, fp)
    assert sum(v is not None for v in white) >= 5


def test_a_calibration_slo_may_have_a_threshold_above_one_but_no_best_reference() -> None:
    slo = {"name": "slope", "metric": "calibrationSlope", "attribute": "race",
           "comparison": "gapToReference", "reference": "overall", "threshold": "1.5"}  # fmt: skip
    assert parse_slo(slo, "spec.slos[0]").threshold == 1.5
    with pytest.raises(
        SpecError, match=r"spec\.slos\[0\]\.reference: calibrationSlope has no best"
    ):
        parse_slo({**slo, "reference": "best"}, "spec.slos[0]")
