"""Inside a calibrated revision: which group a request belongs to, and its answer rewritten."""

from __future__ import annotations

import json

import numpy as np
import pytest
from equiguard.contracts.jsonpath import compile_path
from equiguard.recalibration.groups import GROUPS_HEADER, GroupResolver
from equiguard.recalibration.maps import Calibration, IsotonicMap, Layer, PlattMap, ThresholdMap
from equiguard.recalibration.service import calibrate_answer
from helpers.recalibration import example_manifest
from hypothesis import given
from hypothesis import strategies as st

SUBGROUPS = example_manifest()["spec"]["subgroups"]
DIMENSIONS = ("race", "age_band", "language", "race_x_sex")


def resolve(headers: dict[str, str], fields: dict[str, object]) -> dict[str, str]:
    return GroupResolver(SUBGROUPS, DIMENSIONS).groups(headers, fields)


@pytest.mark.parametrize(
    ("headers", "fields", "expected"),
    [
        pytest.param(
            {GROUPS_HEADER: json.dumps({"race": "Black", "sex": "female", "age_band": "65-79"})},
            {"age": 30},
            {"race": "Black", "age_band": "65-79", "language": "unknown",
             "race_x_sex": "Black/female"},
            id="the sidecar's recorded groups win over the request's own values",
        ),
        pytest.param(
            {"x-patient-language": "Spanish"},
            {"age": 70},
            {"race": "unknown", "age_band": "65-79", "language": "Spanish",
             "race_x_sex": "unknown"},
            id="without the header, field and header sources are read from the request",
        ),
        pytest.param(
            {GROUPS_HEADER: "not json", "X-Patient-Language": "Klingon"},
            {},
            {"race": "unknown", "age_band": "unknown", "language": "unknown",
             "race_x_sex": "unknown"},
            id="a malformed header and undeclared values are unknown",
        ),
        pytest.param(
            {GROUPS_HEADER: json.dumps({"race": "Martian", "age_band": "12-17"})},
            {"age": 50},
            {"race": "unknown", "age_band": "unknown", "language": "unknown",
             "race_x_sex": "unknown"},
            id="a recorded group that is not declared is unknown",
        ),
    ],
)  # fmt: skip
def test_a_requests_groups(
    headers: dict[str, str], fields: dict[str, object], expected: dict[str, str]
) -> None:
    assert resolve(headers, fields) == expected


def calibration(*layers: Layer) -> Calibration:
    return Calibration("readmission:v1", "service:ReadmissionRisk", "$.scores[1]", SUBGROUPS,
                       layers)  # fmt: skip


def test_the_answers_score_is_replaced_by_the_groups_calibrated_score_and_nothing_else() -> None:
    layer = Layer("race", "groupThreshold", {"Black": ThresholdMap(0.2, 0.3)})
    answer = {"scores": [0.75, 0.25], "model": "readmission_risk:v1"}
    groups = {"race": "Black"}
    out = calibrate_answer(answer, compile_path("$.scores[1]"), calibration(layer), groups)
    expected = float(ThresholdMap(0.2, 0.3).apply(np.array([0.25]))[0])
    assert out == {"scores": [0.75, expected], "model": "readmission_risk:v1"}
    assert answer == {"scores": [0.75, 0.25], "model": "readmission_risk:v1"}  # not mutated
    white = calibrate_answer(answer, compile_path("$.scores[1]"), calibration(layer),
                             {"race": "White"})  # fmt: skip
    assert white == answer


def test_an_answer_without_a_score_at_the_path_is_returned_unchanged() -> None:
    layer = Layer("race", "platt", {"Black": PlattMap(1.0, 1.0)})
    answer = {"error": "no score"}
    out = calibrate_answer(answer, compile_path("$.scores[1]"), calibration(layer),
                           {"race": "Black"})  # fmt: skip
    assert out == answer


def test_a_memoized_request_gets_the_groups_a_fresh_resolver_gives_it() -> None:
    resolver = GroupResolver(SUBGROUPS, DIMENSIONS)
    requests: list[tuple[dict[str, str], dict[str, object]]] = [
        ({GROUPS_HEADER: json.dumps({"race": "Black", "sex": "female"})}, {"age": 70}),
        ({GROUPS_HEADER: json.dumps({"race": "Black", "sex": "male"})}, {"age": 70}),
        # 1 == True and hash(1) == hash(True), but a boolean is never an age.
        ({}, {"age": 19}),
        ({}, {"age": True}),
        ({}, {"age": 19.0}),
        # A value that cannot be a memo key is assigned afresh.
        ({"x-patient-language": "Spanish"}, {"age": [70]}),
    ]
    for _ in range(2):
        for headers, fields in requests:
            fresh = GroupResolver(SUBGROUPS, DIMENSIONS).groups(headers, fields)
            assert resolver.groups(headers, fields) == fresh


SCORE_MAPS = {
    "platt": PlattMap(1.3, -0.4),
    "isotonic": IsotonicMap((0.1, 0.4, 0.8), (0.05, 0.5, 0.7)),
    "groupThreshold": ThresholdMap(0.2, 0.3),
}


@given(
    score=st.floats(0.0, 1.0),
    race=st.sampled_from(["Black", "Asian", "White", "unknown"]),
    race_x_sex=st.sampled_from(["Black/female", "White/male", "unknown"]),
    methods=st.tuples(st.sampled_from(sorted(SCORE_MAPS)), st.sampled_from(sorted(SCORE_MAPS))),
)
def test_one_requests_score_is_calibrated_exactly_as_a_one_row_array_is(
    score: float, race: str, race_x_sex: str, methods: tuple[str, str]
) -> None:
    first, second = methods
    layers = (
        Layer("race", first, {"Black": SCORE_MAPS[first], "Asian": PlattMap(0.9, 0.1)}),
        Layer("race_x_sex", second, {"Black/female": SCORE_MAPS[second]}),
    )
    groups = {"race": race, "race_x_sex": race_x_sex}
    columns = {d: np.array([g], dtype=object) for d, g in groups.items()}
    expected = calibration(*layers).apply(np.array([score]), columns)[0]
    assert calibration(*layers).apply_one(score, groups) == expected
