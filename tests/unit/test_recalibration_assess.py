"""Acceptance: a candidate that would worsen any group, or leave an SLO unmet, is refused;
the refusal says why, and groups too small to judge are named, not judged."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from equiguard.contracts.change_control import parse_envelope
from equiguard.engine.spec import parse_model
from equiguard.engine.subgroups import CellLayout
from equiguard.recalibration.assess import assess, serving_on_holdout
from equiguard.recalibration.cells import cell_rows, dimension_groups
from equiguard.recalibration.decide import REFUSE, Decision, Inputs, decide
from equiguard.recalibration.maps import Layer, PlattMap
from equiguard.recalibration.outcomes import Outcomes, split_by_time
from helpers.recalibration import NOW, cohort_outcomes, example_manifest

MANIFEST = example_manifest()
SPEC = parse_model(MANIFEST)
ENVELOPE = parse_envelope(MANIFEST["spec"])


@pytest.fixture(scope="module")
def shrunk() -> Outcomes:
    return cohort_outcomes(MANIFEST, 30_000, seed=21)[1]


def run(outcomes: Outcomes, methods: tuple[str, ...], manifest: dict[str, object] = MANIFEST,
        slo: str = "tpr-gap-race") -> Decision:  # fmt: skip
    spec = parse_model(manifest)
    trigger = next(s for s in spec.slos if s.name == slo)
    envelope = parse_envelope(manifest["spec"])  # type: ignore[arg-type]
    return decide(Inputs(spec, envelope, trigger, trigger.attribute, methods, outcomes, NOW))


def test_a_correction_that_no_longer_fits_the_newest_outcomes_is_refused_for_the_group_it_hurts(
    shrunk: Outcomes,
) -> None:
    # Black patients' scores were shrunk while fitting, but the model was fixed
    # before the holdout began: the fitted raise now overstates their risk.
    _, holdout = split_by_time(shrunk, ENVELOPE.holdout_fraction)
    newest = shrunk.times >= holdout.times[0]
    black = shrunk.groups["race"] == "Black"
    truth = cohort_outcomes(MANIFEST, 30_000, seed=21, plants=())[1].scores
    drifted = Outcomes(
        shrunk.times, np.where(newest & black, truth, shrunk.scores), shrunk.labels, shrunk.groups
    )
    decision = run(drifted, ("platt", "isotonic"))
    assert decision.outcome == REFUSE and decision.reason == "CriteriaNotMet"
    for candidate in decision.candidates:
        assert candidate.assessment is not None and not candidate.assessment.held
        failed = {c.name: c for c in candidate.assessment.failed}
        assert {"maxBrierIncrease", "maxCalibrationError"} <= set(failed)
        hurt = {(k.dimension, k.group) for k in failed["maxBrierIncrease"].checks if not k.held}
        assert ("race", "Black") in hurt
        assert not any(k.dimension == "race" and k.group != "Black" for k in
                       failed["maxCalibrationError"].checks if not k.held)  # fmt: skip
    assert "maxBrierIncrease" in decision.message and "race=Black" in decision.message


def test_a_candidate_that_overstates_a_calibrated_group_fails_each_criterion_it_breaks(
    shrunk: Outcomes,
) -> None:
    _, holdout = split_by_time(shrunk, ENVELOPE.holdout_fraction)
    layout = CellLayout.from_spec(SPEC.subgroups)
    rows = cell_rows(layout, holdout.groups, len(holdout))
    serving = serving_on_holdout(SPEC, layout, rows, holdout.scores, holdout.labels, NOW)
    harmful = Layer("race", "platt", {"White": PlattMap(1.0, 1.5)})
    scores = harmful.apply(holdout.scores, dimension_groups(layout, rows, "race"))
    assessment = assess(SPEC, ENVELOPE, layout, rows, holdout.labels, serving, scores, NOW)
    assert {"allSLOsMet", "maxBrierIncrease", "maxCalibrationError"} <= {
        c.name for c in assessment.failed
    }
    white = {
        c.name: k for c in assessment.criteria for k in c.checks
        if (k.dimension, k.group) == ("race", "White")
    }  # fmt: skip
    assert not white["maxCalibrationError"].held and not white["maxBrierIncrease"].held
    interval = white["maxCalibrationError"].interval
    assert interval is not None and interval[0] > ENVELOPE.acceptance.max_calibration_error
    # A monotone map keeps the ranking within White; only mixing groups moves AUROC.
    assert white["maxAurocDecrease"].held


def test_a_candidate_that_leaves_another_slo_unmet_is_refused_naming_that_slo(
    shrunk: Outcomes,
) -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"]["slos"].append({
        "name": "tpr-floor-sex", "metric": "tpr", "attribute": "sex", "comparison": "floor",
        "threshold": "0.95", "window": "7d", "minSamples": 50, "confidence": "0.95",
        "consecutiveBreaches": 2, "action": "Alert",
    })  # fmt: skip
    decision = run(shrunk, ("platt",), manifest)
    assert decision.outcome == REFUSE and decision.reason == "CriteriaNotMet"
    assert decision.candidates[0].assessment is not None
    assert [c.name for c in decision.candidates[0].assessment.failed] == ["allSLOsMet"]
    assert "tpr-floor-sex (Violated" in decision.message


def test_groups_with_too_few_held_out_outcomes_are_named_and_not_judged(shrunk: Outcomes) -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"]["changeControl"]["minOutcomesPerGroup"] = 1000
    decision = run(shrunk, ("platt",), manifest)
    assessment = decision.candidates[0].assessment
    assert assessment is not None
    assert ("race", "Other") in assessment.not_judged and ("race", "Black") in assessment.judged
    judged_cells = {(k.dimension, k.group) for c in assessment.criteria for k in c.checks}
    assert ("race", "Other") not in judged_cells and ("overall", "all") in judged_cells


@pytest.mark.parametrize(
    ("change", "methods", "slo", "reason"),
    [
        ({"minOutcomesPerGroup": 100_000}, ("platt",), "tpr-gap-race", "InsufficientOutcomes"),
        ({}, ("groupThreshold",), "calibration-payer", "MethodNotApplicable"),
    ],
)
def test_a_refusal_without_a_candidate_says_why(
    shrunk: Outcomes, change: dict[str, int], methods: tuple[str, ...], slo: str, reason: str
) -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["spec"]["changeControl"].update(change)
    decision = run(shrunk, methods, manifest, slo)
    assert (decision.outcome, decision.reason) == (REFUSE, reason)
    assert all(c.assessment is None for c in decision.candidates)


def test_nothing_is_fitted_when_every_group_is_calibrated() -> None:
    calibrated = cohort_outcomes(MANIFEST, 30_000, seed=22, plants=())[1]
    decision = run(calibrated, ("platt", "isotonic"))
    assert (decision.outcome, decision.reason) == (REFUSE, "NoGroupToChange")


def test_an_empty_window_is_refused_for_too_few_outcomes(shrunk: Outcomes) -> None:
    decision = run(shrunk.take(np.zeros(len(shrunk), dtype=bool)), ("platt",))
    assert (decision.outcome, decision.reason) == (REFUSE, "InsufficientOutcomes")
    assert decision.serving is None
