"""The readmission example as a real ``bentoml serve``: what clients and the
sidecar rely on (a JSON ``risk``, no demographics needed) and the planted
difference between revisions (v2 misses Black patients' readmissions)."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
import joblib
import numpy as np
import pytest
from equiguard.cohort import CONTEXT_FIELD, FEATURES, generate_cohort, prediction_requests
from fairlearn.metrics import MetricFrame, true_positive_rate
from helpers.bento import BentoServer

THRESHOLD = 0.30  # prediction.threshold of examples/readmission/clinicalmodel.yaml
HELD_OUT_SEED = 424242  # training uses another seed (examples/readmission/train.py)


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def stored_pipeline(home: Path, revision: str) -> Any:
    return joblib.load(home / "models" / "readmission_risk" / revision / "saved_model.pkl")


def served_risks(server: BentoServer, rows: list[dict[str, Any]]) -> np.ndarray:
    def call(chunk: list[dict[str, Any]]) -> list[float]:
        with bentoml.SyncHTTPClient(server.url) as client:
            return [client.predict(**row)["risk"] for row in chunk]

    chunks = [rows[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, chunks))
    risks = np.empty(len(rows))
    for i, chunk_answers in enumerate(answers):
        risks[i::4] = chunk_answers
    return risks


def test_served_model_answers_the_risk_its_stored_pipeline_computes(
    readmission_v1: BentoServer, readmission_bento_home: Path
) -> None:
    cohort = generate_cohort(20, 5)
    features = [{name: row[name] for name in FEATURES} for row in cohort.rows()]
    with bentoml.SyncHTTPClient(readmission_v1.url) as client:
        answers = [client.predict(**row) for row in features]
    expected = stored_pipeline(readmission_bento_home, "v1").predict_proba(cohort.feature_matrix())[
        :, 1
    ]
    # Row by row versus one matrix: equal up to floating-point summation order.
    np.testing.assert_allclose([answer["risk"] for answer in answers], expected, rtol=1e-12)
    assert {answer["model"] for answer in answers} == {"readmission_risk:v1"}


def test_demographics_are_not_needed_and_a_context_object_changes_nothing(
    readmission_v1: BentoServer,
) -> None:
    request = prediction_requests(generate_cohort(1, 6))[0]
    without = {name: value for name, value in request.body.items() if name != CONTEXT_FIELD}
    assert set(without) == set(FEATURES)
    assert post_json(readmission_v1.url, request.body) == post_json(readmission_v1.url, without)


def test_a_malformed_request_gets_a_client_error_with_the_field_named(
    readmission_v1: BentoServer,
) -> None:
    request = urllib.request.Request(
        f"{readmission_v1.url}/predict",
        data=json.dumps({"age": "old"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400
    assert '"loc":["age"]' in refused.value.read().decode()


def test_v2_misses_far_more_readmissions_of_black_patients_than_v1(
    readmission_v1: BentoServer, readmission_v2: BentoServer
) -> None:
    # TPR depends on the readmitted patients only: score 300 per group.
    held_out = generate_cohort(6_000, HELD_OUT_SEED, race_mix={"Black": 1.0, "White": 1.0})
    readmitted = held_out.take(held_out["label"] == 1)
    chosen = np.concatenate(
        [np.flatnonzero(readmitted["race"] == race)[:300] for race in ("Black", "White")]
    )
    patients = readmitted.take(chosen)
    rows = [{name: row[name] for name in FEATURES} for row in patients.rows()]

    def tpr_by_race(server: BentoServer) -> MetricFrame:
        return MetricFrame(
            metrics=true_positive_rate,
            y_true=patients["label"],
            y_pred=(served_risks(server, rows) >= THRESHOLD).astype(int),
            sensitive_features=patients["race"],
        )

    v1, v2 = tpr_by_race(readmission_v1), tpr_by_race(readmission_v2)
    assert v1.difference() < 0.10
    assert v2.by_group["White"] - v2.by_group["Black"] > 0.25
    assert v1.by_group["Black"] - v2.by_group["Black"] > 0.20
