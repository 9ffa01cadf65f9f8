"""Label-free estimates: the formula on the rows, honest intervals, none without calibration."""

from __future__ import annotations

import numpy as np
import pytest
from equiguard.engine.estimation import (
    CALIBRATION_FAILS,
    NO_PREDICTIONS,
    TOO_FEW_REFERENCE_OUTCOMES,
    estimate_of,
    estimate_rates,
)
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from statsmodels.stats.proportion import proportion_confint

LAYOUT = CellLayout.from_spec(Subgroups((Attribute("site", values=("calibrated", "skewed")),), ()))
THRESHOLD = 0.3


def cohort(
    rng: np.random.Generator, n: int, skew: float = 1.0, a: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows half of each site; the skewed site's outcomes follow score ** skew, not the score."""
    sites = np.where(np.arange(n) % 2 == 0, "calibrated", "skewed")
    scores = rng.beta(a, 5.0, n)
    truth = np.where(sites == "skewed", scores**skew, scores)
    labels = (rng.random(n) < truth).astype(np.int64)
    return LAYOUT.assign({"site": list(sites)}, n), scores, labels


def reference_of(cells: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Statistics:
    stats = Statistics.empty(LAYOUT.cells, THRESHOLD)
    stats.update(cells, scores, labels)
    return stats


def current_of(cells: np.ndarray, scores: np.ndarray) -> ScoreStatistics:
    stats = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
    stats.update(cells, scores)
    return stats


def test_the_estimate_is_the_reference_corrected_sum_of_scores_on_the_rows() -> None:
    rng = np.random.default_rng(1)
    ref_cells, ref_scores, ref_labels = cohort(rng, 20000)
    cells, scores, _ = cohort(rng, 4000, a=3.0)
    estimates = estimate_rates(
        current_of(cells, scores), reference_of(ref_cells, ref_scores, ref_labels)
    )
    row = LAYOUT.cell_index("site", "calibrated")
    mine, ref = (cells == row).any(axis=1), (ref_cells == row).any(axis=1)
    ratio = {}
    for side, chosen in (("hi", ref_scores >= THRESHOLD), ("lo", ref_scores < THRESHOLD)):
        ratio[side] = ref_labels[ref & chosen].sum() / ref_scores[ref & chosen].sum()
    flagged = mine & (scores >= THRESHOLD)
    a = ratio["hi"] * scores[flagged].sum()
    b = ratio["lo"] * scores[mine & (scores < THRESHOLD)].sum()
    result = estimate_of(estimates, ("site", "calibrated"))
    assert result.available
    assert result.rates["tpr"].value == pytest.approx(a / (a + b), rel=1e-9)
    assert result.rates["ppv"].value == pytest.approx(a / flagged.sum(), rel=1e-9)
    assert result.rates["fpr"].value == pytest.approx(
        (flagged.sum() - a) / (mine.sum() - a - b), rel=1e-9
    )


def test_the_selection_rate_is_observed_with_the_wilson_interval_of_statsmodels() -> None:
    rng = np.random.default_rng(2)
    reference = reference_of(*cohort(rng, 4000))
    cells, scores, _ = cohort(rng, 900)
    result = estimate_of(estimate_rates(current_of(cells, scores), reference), ("overall", "all"))
    flagged = int((scores >= THRESHOLD).sum())
    lower, upper = proportion_confint(flagged, 900, alpha=0.05, method="wilson")
    rate = result.rates["selectionRate"]
    assert rate.value == flagged / 900
    assert (rate.lower, rate.upper) == (pytest.approx(lower), pytest.approx(upper))


def test_95_percent_intervals_hold_the_rate_the_outcomes_later_show() -> None:
    rng = np.random.default_rng(3)
    reference = reference_of(*cohort(rng, 6000))
    held = {"tpr": 0, "fpr": 0, "ppv": 0}
    widths = []
    trials = 300
    for _ in range(trials):
        # A covariate shift: the window's scores are higher than the reference's.
        cells, scores, labels = cohort(rng, 1600, a=2.6)
        result = estimate_of(
            estimate_rates(current_of(cells, scores), reference), ("site", "calibrated")
        )
        mine = (cells == LAYOUT.cell_index("site", "calibrated")).any(axis=1)
        flagged, positive = scores[mine] >= THRESHOLD, labels[mine] == 1
        realised = {
            "tpr": (flagged & positive).sum() / positive.sum(),
            "fpr": (flagged & ~positive).sum() / (~positive).sum(),
            "ppv": (flagged & positive).sum() / flagged.sum(),
        }
        for metric, value in realised.items():
            rate = result.rates[metric]
            held[metric] += rate.lower <= value <= rate.upper
        widths.append(result.rates["tpr"].upper - result.rates["tpr"].lower)
    for metric, count in held.items():
        assert count / trials >= 0.90, (metric, count / trials)
    assert float(np.mean(widths)) < 0.2  # an interval, not a shrug


def test_a_group_miscalibrated_on_the_reference_gets_no_rates_but_its_selection_rate() -> None:
    rng = np.random.default_rng(4)
    reference = reference_of(*cohort(rng, 8000, skew=0.5))
    cells, scores, _ = cohort(rng, 1000)
    estimates = estimate_rates(current_of(cells, scores), reference)
    skewed = estimate_of(estimates, ("site", "skewed"))
    assert not skewed.available
    assert skewed.reason == CALIBRATION_FAILS
    assert "standard deviations" in skewed.calibration.message
    assert set(skewed.rates) == {"selectionRate"}
    assert estimate_of(estimates, ("site", "calibrated")).available


def test_a_group_with_too_few_reference_outcomes_gets_no_rates() -> None:
    rng = np.random.default_rng(5)
    reference = reference_of(*cohort(rng, 80))
    cells, scores, _ = cohort(rng, 1000)
    result = estimate_of(estimate_rates(current_of(cells, scores), reference), ("site", "skewed"))
    assert result.reason == TOO_FEW_REFERENCE_OUTCOMES
    assert "fewer than 50 labelled predictions" in result.calibration.message


def test_a_group_without_predictions_in_the_window_says_so() -> None:
    rng = np.random.default_rng(6)
    reference = reference_of(*cohort(rng, 4000))
    cells, scores, _ = cohort(rng, 1)  # one row: only the calibrated site
    result = estimate_of(estimate_rates(current_of(cells, scores), reference), ("site", "skewed"))
    assert result.reason == NO_PREDICTIONS
    assert not result.available and result.rates == {}


def test_statistics_of_another_layout_are_refused() -> None:
    other = ScoreStatistics.empty(LAYOUT.cells, 0.5)
    with pytest.raises(ValueError, match="same cells, threshold and bins"):
        estimate_rates(other, Statistics.empty(LAYOUT.cells, THRESHOLD))
