"""Each recalibration method on generated data: a group whose scores were shrunk
comes back within the envelope's criteria, and no other group changes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from equiguard.contracts.change_control import parse_envelope
from equiguard.engine.spec import parse_model
from equiguard.recalibration.decide import PUBLISH, Decision, Inputs, decide
from equiguard.recalibration.fit import (
    MIN_BLOCK,
    THRESHOLD_GRID,
    choose_group_threshold,
    fit_isotonic,
    fit_platt,
    rate_at,
)
from equiguard.recalibration.maps import (
    Calibration,
    IsotonicMap,
    Layer,
    PlattMap,
    ThresholdMap,
    logit,
)
from equiguard.recalibration.outcomes import Outcomes
from helpers.recalibration import EVEN_RACE_MIX, NOW, cohort_outcomes, example_manifest
from hypothesis import given
from hypothesis import strategies as st

MANIFEST = example_manifest()
SPEC = parse_model(MANIFEST)
ENVELOPE = parse_envelope(MANIFEST["spec"])
TPR_GAP = SPEC.slos[0]
RACES = ("White", "Black", "Asian", "Hispanic", "Other")
METHODS = ("platt", "isotonic", "groupThreshold")


@pytest.fixture(scope="module")
def shrunk() -> Outcomes:
    """Black patients' scores shrunk by 1.5 on the logit scale; everyone else calibrated."""
    return cohort_outcomes(MANIFEST, 150_000, seed=11, race_mix=EVEN_RACE_MIX)[1]


def recalibrate(outcomes: Outcomes, method: str) -> Decision:
    return decide(Inputs(SPEC, ENVELOPE, TPR_GAP, "race", (method,), outcomes, NOW))


@pytest.mark.parametrize("method", METHODS)
def test_a_shrunk_groups_tpr_and_calibration_error_return_within_the_criteria(
    method: str, shrunk: Outcomes
) -> None:
    decision = recalibrate(shrunk, method)
    assert decision.outcome == PUBLISH, decision.message
    assert decision.chosen is not None and decision.chosen.assessment is not None
    before, after = decision.chosen.assessment.before, decision.chosen.assessment.after
    assert decision.serving_verdicts["tpr-gap-race"].status == "Violated"
    assert decision.chosen.assessment.verdicts_after["tpr-gap-race"].status == "Met"
    tpr = {
        g: (float(before.value("tpr", "race", g) or 0), float(after.value("tpr", "race", g) or 0))
        for g in RACES
    }
    assert tpr["White"][0] - tpr["Black"][0] > 0.25  # the planted gap
    assert abs(tpr["White"][1] - tpr["Black"][1]) <= TPR_GAP.threshold
    ece_before, ece_after = (
        before.value("ece", "race", "Black"),
        after.value("ece", "race", "Black"),
    )
    assert ece_before is not None and ece_after is not None
    assert ece_before > 0.10 and ece_after < ece_before / 2
    if method != "groupThreshold":  # a threshold moves decisions, not the probabilities' scale
        assert ece_after <= ENVELOPE.acceptance.max_calibration_error
    assert all(criterion.held for criterion in decision.chosen.assessment.criteria)


@pytest.mark.parametrize("method", METHODS)
def test_only_the_shrunk_group_changes_and_every_other_group_keeps_its_scores_and_metrics(
    method: str, shrunk: Outcomes
) -> None:
    decision = recalibrate(shrunk, method)
    assert decision.layer is not None and set(decision.layer.maps) == {"Black"}
    race = shrunk.groups["race"]
    scores = decision.layer.apply(shrunk.scores, race)
    others = race != "Black"
    np.testing.assert_array_equal(scores[others], shrunk.scores[others])
    assert not np.array_equal(scores[~others], shrunk.scores[~others])
    assert decision.chosen is not None and decision.chosen.assessment is not None
    before, after = decision.chosen.assessment.before, decision.chosen.assessment.after
    for group in ("White", "Asian", "Hispanic", "Other"):
        for metric in ("tpr", "fpr", "ece", "brier", "auroc", "observedExpectedRatio"):
            assert after.value(metric, "race", group) == before.value(metric, "race", group)


def test_platt_scaling_equals_statsmodels_logistic_regression_on_the_logit_of_the_score() -> None:
    rng = np.random.default_rng(3)
    scores = rng.uniform(0.02, 0.98, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-(0.7 * logit(scores) + 0.4)))).astype(int)
    fitted = fit_platt(scores, labels)
    reference = sm.Logit(labels, sm.add_constant(logit(scores))).fit(disp=0)
    assert fitted.intercept == pytest.approx(reference.params[0], abs=1e-4)
    assert fitted.slope == pytest.approx(reference.params[1], abs=1e-4)


def test_isotonic_map_is_non_decreasing_within_0_1_and_calibrated_on_its_own_data() -> None:
    rng = np.random.default_rng(4)
    scores = rng.uniform(0.0, 1.0, 5000)
    labels = (rng.random(5000) < scores**2).astype(int)  # the scores overstate the risk
    fitted = fit_isotonic(scores, labels)
    grid = np.linspace(0.0, 1.0, 1001)
    mapped = fitted.apply(grid)
    assert np.all(np.diff(mapped) >= 0.0) and mapped.min() >= 0.0 and mapped.max() <= 1.0
    assert fitted.apply(scores).mean() == pytest.approx(labels.mean(), abs=0.01)


def test_no_isotonic_step_describes_fewer_than_eleven_outcomes() -> None:
    rng = np.random.default_rng(5)
    for n in (11, 23, 50, 120):
        scores = rng.uniform(0.0, 1.0, n)
        fitted = fit_isotonic(scores, (rng.random(n) < scores).astype(int))
        assert len(fitted.knots) <= n // MIN_BLOCK
        assert not set(fitted.knots) & set(scores.tolist())  # no patient's own score


def test_the_chosen_group_threshold_is_the_grid_value_whose_tpr_is_nearest_the_target() -> None:
    rng = np.random.default_rng(6)
    scores = rng.beta(2, 5, 3000)
    labels = (rng.random(3000) < scores).astype(int)
    chosen = choose_group_threshold("tpr", scores, labels, 0.62, 0.30)
    distances = [abs(rate_at("tpr", scores, labels, float(t)) - 0.62) for t in THRESHOLD_GRID]
    assert chosen in THRESHOLD_GRID
    assert abs(rate_at("tpr", scores, labels, chosen) - 0.62) == pytest.approx(min(distances))


@given(
    score=st.floats(0.0, 1.0),
    group_threshold=st.sampled_from([float(t) for t in THRESHOLD_GRID]),
    threshold=st.sampled_from([0.1, 0.3, 0.5, 0.85]),
)
def test_a_group_threshold_map_decides_exactly_as_the_group_threshold_would(
    score: float, group_threshold: float, threshold: float
) -> None:
    mapped = ThresholdMap(group_threshold, threshold).apply(np.array([score, min(score + 1e-3, 1)]))
    assert (mapped[0] >= threshold) == (score >= group_threshold)
    assert 0.0 <= mapped[0] <= mapped[1] <= 1.0


def test_a_calibration_survives_json_and_applies_its_layers_in_order() -> None:
    first = Layer("race", "platt", {"Black": PlattMap(1.1, 0.9)})
    second = Layer("race_x_sex", "isotonic", {"Black/female": IsotonicMap((0.1, 0.9), (0.2, 0.8))})
    calibration = Calibration("readmission:v1", "service:ReadmissionRisk", "$.risk",
                              MANIFEST["spec"]["subgroups"], (first, second))  # fmt: skip
    again = Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    scores = np.array([0.2, 0.2, 0.2])
    groups = {
        "race": np.array(["Black", "Black", "White"], dtype=object),
        "race_x_sex": np.array(["Black/female", "Black/male", "White/female"], dtype=object),
    }
    expected_black = 1 / (1 + math.exp(-(1.1 * math.log(0.2 / 0.8) + 0.9)))
    expected_female = float(np.interp(expected_black, (0.1, 0.9), (0.2, 0.8)))
    np.testing.assert_allclose(
        again.apply(scores, groups), [expected_female, expected_black, 0.2], rtol=1e-12
    )
