"""A calibrated revision served by BentoML's own HTTP app, in this process: the base
service's answers with the group's map applied, for sync and async APIs alike,
its response headers kept, and bad input refused as the base refuses it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import bentoml
import numpy as np
import pytest
from equiguard.recalibration.groups import GROUPS_HEADER
from equiguard.recalibration.maps import Calibration, Layer, PlattMap, ThresholdMap
from equiguard.recalibration.service import BASE_FOLDER, CALIBRATION_FILE, calibrated_revision
from helpers.recalibration import example_manifest
from starlette.testclient import TestClient

BASE_MODULE = "toy_risk_service"
BASE_SOURCE = """
from typing import Annotated

import bentoml
from pydantic import BaseModel, ConfigDict, Field


class Patient(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)

    age: Annotated[int, Field(ge=18, le=120)]
    weight: Annotated[float, Field(gt=0)]


def risk(patient):
    return patient["age"] / 200 + patient["weight"] / 1000


@bentoml.service(workers=1)
class ToyRisk:
    @bentoml.api(input_spec=Patient)
    def predict(self, **patient):
        return {"risk": risk(patient), "model": "toy"}

    @bentoml.api(input_spec=Patient, route="/predict_async")
    async def predict_async(self, ctx: bentoml.Context, **patient):
        ctx.response.headers["x-toy"] = "answered"
        return {"risk": risk(patient), "model": "toy"}
"""
LAYERS = (
    Layer("race", "platt", {"Black": PlattMap(1.05, 0.9), "Asian": PlattMap(0.9, 0.1)}),
    Layer("race_x_sex", "groupThreshold", {"Black/female": ThresholdMap(0.35, 0.3)}),
)


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    subgroups = example_manifest()["spec"]["subgroups"]
    return Calibration("toy:v1", f"{BASE_MODULE}:ToyRisk", "$.risk", subgroups, LAYERS)


@pytest.fixture(scope="module")
def served(
    calibration: Calibration, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Any]]:
    """A client of the calibrated revision and an instance of its base service."""
    folder = tmp_path_factory.mktemp("calibrated")
    (folder / BASE_FOLDER).mkdir()
    (folder / BASE_FOLDER / f"{BASE_MODULE}.py").write_text(BASE_SOURCE)
    (folder / CALIBRATION_FILE).write_text(json.dumps(calibration.to_dict()))
    inner, config = calibrated_revision(folder)
    service = bentoml.service(**config)(inner)
    try:
        with TestClient(service.to_asgi()) as client:
            yield client, sys.modules[BASE_MODULE].ToyRisk()
    finally:
        sys.modules.pop(BASE_MODULE, None)
        sys.path.remove(str(folder / BASE_FOLDER))


PATIENTS = [{"age": 40, "weight": 70.0}, {"age": 85, "weight": 52.5}, {"age": 18, "weight": 110.0}]
GROUPS = [
    {"race": "Black", "sex": "female"},
    {"race": "Black", "sex": "male"},
    {"race": "Asian", "sex": "female"},
    {"race": "White", "sex": "male"},
    {},  # without the sidecar's header: race is unknown, the score unchanged
]


@pytest.mark.parametrize("route", ["/predict", "/predict_async"])
def test_each_answer_is_the_base_answer_with_the_groups_maps_applied(
    served: tuple[TestClient, Any], calibration: Calibration, route: str
) -> None:
    client, base = served
    for patient in PATIENTS:
        base_answer = base.predict(**patient)
        for groups in GROUPS:
            headers = {GROUPS_HEADER: json.dumps(groups)} if groups else {}
            response = client.post(route, json=patient, headers=headers)
            assert response.status_code == 200
            race = groups.get("race", "unknown")
            race_x_sex = f"{race}/{groups['sex']}" if groups else "unknown"
            columns = {"race": [race], "race_x_sex": [race_x_sex]}
            expected = calibration.apply(
                np.array([base_answer["risk"]]),
                {d: np.array(g, dtype=object) for d, g in columns.items()},
            )[0]
            assert response.json() == {**base_answer, "risk": expected}


def test_an_api_that_sets_response_headers_keeps_them(served: tuple[TestClient, Any]) -> None:
    client, _ = served
    response = client.post("/predict_async", json=PATIENTS[0])
    assert response.headers["x-toy"] == "answered"
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("route", ["/predict", "/predict_async"])
def test_bad_input_is_refused_with_the_base_schemas_error(
    served: tuple[TestClient, Any], route: str
) -> None:
    client, _ = served
    response = client.post(route, json={"age": 4}, headers={GROUPS_HEADER: '{"race": "Black"}'})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert [(error["loc"], error["type"]) for error in detail] == [
        (["age"], "greater_than_equal"),
        (["weight"], "missing"),
    ]
    assert all("input" not in error for error in detail)  # the request's values stay out
