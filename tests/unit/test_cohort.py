"""The synthetic readmission cohort: reproducible, documented, and carrying exactly
the subgroup differences planted in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
import yaml
from equiguard.cohort import (
    CONTEXT_FIELD,
    FEATURES,
    READMISSION_SOURCES,
    TRUE_COEFFICIENTS,
    TRUE_INTERCEPT,
    Cohort,
    CostUnderRecording,
    MissedReadmissions,
    ScoreShift,
    generate_cohort,
    outcome_messages,
    prediction_requests,
)
from equiguard.contracts.sidecar_config import read_sources
from fairlearn.metrics import MetricFrame, true_positive_rate

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "readmission" / "clinicalmodel.yaml"
THRESHOLD = 0.30


def example_attributes() -> list[dict[str, Any]]:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    attributes: list[dict[str, Any]] = spec["subgroups"]["attributes"]
    return attributes


def race_tpr_by_group(cohort: Cohort, score: str = "reference_score") -> dict[str, float]:
    frame = MetricFrame(
        metrics=true_positive_rate,
        y_true=cohort["label"],
        y_pred=(cohort[score] >= THRESHOLD).astype(int),
        sensitive_features=cohort["race"],
    )
    return {str(group): float(value) for group, value in frame.by_group.items()}


def test_the_same_seed_gives_the_same_cohort_and_another_seed_another() -> None:
    first, again, other = (generate_cohort(2_000, seed) for seed in (7, 7, 8))
    assert first.columns.keys() == again.columns.keys()
    for name in first.columns:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["risk"], other["risk"])


def test_every_demographic_value_is_a_group_the_example_declares() -> None:
    cohort = generate_cohort(5_000, 1)
    for attribute in example_attributes():
        name = str(attribute["name"])
        if "values" in attribute:
            assert set(cohort[name].tolist()) == set(attribute["values"]), name
    assert cohort["age"].min() >= 18


def test_readmission_follows_the_documented_logistic_model() -> None:
    cohort = generate_cohort(60_000, 3, plants=())
    terms = np.column_stack(
        [
            (cohort["age"] - 65) / 10.0,
            cohort["charlson_index"],
            cohort["prior_admissions_12m"],
            cohort["ed_visits_6m"],
            np.log(cohort["length_of_stay_days"]),
            cohort["medication_count"] - 6,
        ]
    )
    fit = sm.Logit(cohort["readmitted"], sm.add_constant(terms)).fit(disp=0)
    expected = [TRUE_INTERCEPT, *TRUE_COEFFICIENTS.values()]
    low, high = fit.conf_int(alpha=0.001).T
    assert np.all((low <= expected) & (expected <= high)), (fit.params, expected)


def test_a_planted_score_shift_opens_a_tpr_gap_for_that_group_only() -> None:
    plain = race_tpr_by_group(generate_cohort(40_000, 5, plants=()))
    shifted = race_tpr_by_group(
        generate_cohort(40_000, 5, plants=(ScoreShift("race", "Black", -1.5),))
    )
    assert max(plain.values()) - min(plain.values()) < 0.10  # the example SLO holds
    assert plain["Black"] - shifted["Black"] > 0.30
    for group in ("White", "Asian", "Hispanic", "Other"):
        assert shifted[group] == pytest.approx(plain[group])


def test_missed_readmissions_corrupt_recorded_labels_of_that_group_only() -> None:
    truth = generate_cohort(40_000, 9, plants=())
    noisy = generate_cohort(40_000, 9, plants=(MissedReadmissions("race", "Hispanic", 0.4),))
    np.testing.assert_array_equal(truth["readmitted"], noisy["readmitted"])
    changed = noisy["label"] != noisy["readmitted"]
    assert set(noisy["race"][changed].tolist()) == {"Hispanic"}
    assert np.all(noisy["label"][changed] == 0)
    hispanic_positives = (noisy["race"] == "Hispanic") & (noisy["readmitted"] == 1)
    assert changed[hispanic_positives].mean() == pytest.approx(0.4, abs=0.05)


def test_under_recorded_cost_lowers_spending_of_that_group_at_the_same_need() -> None:
    fair = generate_cohort(20_000, 11, plants=())
    biased = generate_cohort(20_000, 11, plants=(CostUnderRecording("race", "Black", 0.25),))
    black = biased["race"] == "Black"
    np.testing.assert_allclose(
        biased["prior_cost_12m"][black], fair["prior_cost_12m"][black] * 0.25, atol=0.01
    )
    np.testing.assert_array_equal(biased["prior_cost_12m"][~black], fair["prior_cost_12m"][~black])
    np.testing.assert_array_equal(biased["risk"], fair["risk"])


def test_race_mix_sets_the_group_shares() -> None:
    cohort = generate_cohort(10_000, 2, race_mix={group: 1.0 for group in ("Black", "White")})
    shares = {group: float(np.mean(cohort["race"] == group)) for group in ("Black", "White")}
    assert set(cohort["race"].tolist()) == {"Black", "White"}
    assert shares["Black"] == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate_cohort(10, 1, race_mix={"Martian": 1.0}), "unknown groups ['Martian']"),
        (
            lambda: generate_cohort(10, 1, plants=(ScoreShift("zip", "02139", 1.0),)),
            "attribute must be one of",
        ),
        (lambda: generate_cohort(-1, 1), "n must be non-negative"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()  # type: ignore[operator]


def test_sources_match_the_example_clinical_model() -> None:
    declared = read_sources({"subgroups": {"attributes": example_attributes()}})
    assert {a.name: (a.source, a.key) for a in declared} == dict(READMISSION_SOURCES)


def test_requests_carry_features_in_the_body_and_demographics_where_the_spec_says() -> None:
    cohort = generate_cohort(50, 4)
    requests = prediction_requests(cohort, id_prefix="t-")
    first, row = requests[0], next(cohort.rows())
    assert set(first.body) == {*FEATURES, CONTEXT_FIELD}
    assert {name: first.body[name] for name in FEATURES} == {name: row[name] for name in FEATURES}
    assert first.body[CONTEXT_FIELD] == {
        name: row[name] for name in ("race", "sex", "payer", "adi_quintile")
    }
    assert first.headers == {"X-Patient-Language": row["language"], "X-Request-Id": "t-00000000"}
    assert len({request.request_id for request in requests}) == 50
    json.dumps([request.body for request in requests])  # plain JSON values only


def test_outcomes_name_the_requests_they_belong_to() -> None:
    cohort = generate_cohort(30, 4, plants=(MissedReadmissions("race", "White", 1.0),))
    requests = prediction_requests(cohort)
    outcomes = outcome_messages(cohort, subgroups=("race",))
    assert [o["request_id"] for o in outcomes] == [r.request_id for r in requests]
    assert [o["label"] for o in outcomes] == cohort["label"].tolist()
    assert [o["race"] for o in outcomes] == cohort["race"].tolist()
    assert set(outcomes[0]) == {"request_id", "label", "race"}


def test_a_source_naming_a_missing_column_is_refused() -> None:
    with pytest.raises(KeyError, match="needs a cohort column 'mrn'"):
        prediction_requests(generate_cohort(3, 1), {"mrn": ("context", "mrn")})
