"""A real sidecar in front of a real `bentoml serve`, called with BentoML's own client.

Predictions go through the sidecar, outcomes come back later, and what the
sidecar reports equals fairlearn and scikit-learn on the same rows.
"""

from __future__ import annotations

import json
import math
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pytest
from equiguard.cohort import (
    FEATURES,
    Cohort,
    PredictionRequest,
    generate_cohort,
    outcome_messages,
    prediction_requests,
)
from equiguard.contracts.sidecar_config import read_sources
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from helpers.bento import BentoServer, served_bento
from helpers.sidecar import TOKEN, example_spec, running_sidecar, sidecar_config
from sklearn.metrics import brier_score_loss, precision_score

THRESHOLD = 0.30
AGE_EDGES = (18, 45, 65, 80)
AGE_LABELS = ("18-44", "45-64", "65-79", "80+")


def header_spec() -> dict[str, Any]:
    """The example's spec with every context source read from a header instead.

    BentoML's client sends only the API's own arguments as the body, so the
    demographics travel as headers (the context object is tested on its own).
    """
    spec = example_spec()
    for attribute in spec["subgroups"]["attributes"]:
        if "context" in attribute["source"]:
            attribute["source"] = {"header": f"X-Patient-{attribute['name'].replace('_', '-')}"}
    return spec


def post(url: str, body: Mapping[str, Any], token: str | None = TOKEN) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def predict_with_bentoml_client(url: str, requests: list[PredictionRequest]) -> np.ndarray:
    """Risks answered through `url` by BentoML's SyncHTTPClient, four clients at once."""

    def call(chunk: list[PredictionRequest]) -> list[float]:
        with bentoml.SyncHTTPClient(url) as client:
            risks = []
            for request in chunk:
                client.client.headers.update(request.headers)
                features = {name: request.body[name] for name in FEATURES}
                risks.append(client.predict(**features)["risk"])
            return risks

    chunks = [requests[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, chunks))
    risks = np.empty(len(requests))
    for i, chunk_answers in enumerate(answers):
        risks[i::4] = chunk_answers
    return risks


def age_bands(ages: np.ndarray) -> np.ndarray:
    return np.array(
        [AGE_LABELS[int(np.searchsorted(AGE_EDGES, age, side="right")) - 1] for age in ages]
    )


def fairlearn_frames(
    cohort: Cohort, risks: np.ndarray, dimension: str
) -> tuple[MetricFrame, MetricFrame]:
    sensitive = age_bands(cohort["age"]) if dimension == "age_band" else cohort[dimension]
    labels = cohort["label"]
    decisions = (risks >= THRESHOLD).astype(int)
    rates = MetricFrame(
        metrics={
            "selectionRate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "fnr": false_negative_rate,
            "tnr": true_negative_rate,
            "ppv": lambda y, p: precision_score(y, p, zero_division=np.nan),
        },
        y_true=labels,
        y_pred=decisions,
        sensitive_features=sensitive,
    )
    brier = MetricFrame(
        metrics={"brier": brier_score_loss},
        y_true=labels,
        y_pred=risks,
        sensitive_features=sensitive,
    )
    return rates, brier


def test_metrics_of_predictions_made_through_the_sidecar_equal_fairlearn(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    spec = header_spec()
    cohort = generate_cohort(800, 20240601)
    sources = {a.name: (a.source, a.key) for a in read_sources(spec)}
    requests = prediction_requests(cohort, sources)
    with running_sidecar(
        sidecar_config(readmission_v1.url, tmp_path, spec=spec), tmp_path
    ) as sidecar:
        risks = predict_with_bentoml_client(sidecar.url, requests)
        messages = outcome_messages(cohort)
        accepted = 0
        for start in range(0, len(messages), 250):
            status, answer = post(
                f"{sidecar.url}/v1/outcomes", {"outcomes": messages[start : start + 250]}
            )
            assert status == 200, answer
            accepted += answer["accepted"]
        assert accepted == len(cohort)
        status, report = get(f"{sidecar.url}/v1/metrics?window=7d")
    assert status == 200
    assert (report["model"], report["revision"]) == ("readmission-risk", "v1")
    compared = 0
    for dimension in ("race", "sex", "payer", "age_band"):
        rates, brier = fairlearn_frames(cohort, risks, dimension)
        for frame in (rates, brier):
            for group, row in frame.by_group.iterrows():
                block = report["metrics"][dimension][str(group)]
                for metric, expected in row.items():
                    served = block[metric]
                    if served is None:
                        # Only a suppressed or undefined value may be missing.
                        assert metric in block["suppressed"] or math.isnan(expected)
                        continue
                    assert served == pytest.approx(expected, rel=1e-12, abs=1e-15), (
                        dimension,
                        group,
                        metric,
                    )
                    compared += 1
    overall = report["metrics"]["overall"]["all"]
    decisions = risks >= THRESHOLD
    assert overall["tpr"] == pytest.approx(true_positive_rate(cohort["label"], decisions))
    assert overall["n"] == len(cohort)
    assert compared > 60


def test_the_context_object_is_read_and_never_reaches_the_model(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    request = prediction_requests(generate_cohort(1, 11))[0]
    with (
        running_sidecar(sidecar_config(readmission_v1.url, tmp_path), tmp_path) as sidecar,
        bentoml.SyncHTTPClient(sidecar.url) as client,
    ):
        proxied = client.request("POST", "/predict", json=request.body, headers=request.headers)
        assert proxied.status_code == 200
        assert proxied.headers["X-Request-Id"] == request.request_id
        # The model answers the same as without the demographics.
        features = {name: request.body[name] for name in FEATURES}
        assert proxied.json() == client.predict(**features)
        status, answer = post(
            f"{sidecar.url}/v1/records",
            {"records": [{"request_id": request.request_id, "score": 0.5}]},
        )
        assert (status, answer["duplicate"]) == (200, 1)
    rows = sidecar_rows(tmp_path)
    (groups,) = [g for request_id, g in rows if request_id == request.request_id]
    context = request.body["equiguard_context"]
    assert groups["race"] == context["race"]
    assert groups["payer"] == context["payer"]


def sidecar_rows(folder: Path) -> list[tuple[str, dict[str, str]]]:
    with sqlite3.connect(folder / "predictions.db") as db:
        return [
            (r, json.loads(g)) for r, g in db.execute("SELECT request_id, groups FROM predictions")
        ]


def test_a_model_server_that_goes_down_gets_502_and_the_sidecar_recovers_with_it(
    readmission_bento_home: Path, tmp_path: Path
) -> None:
    request = prediction_requests(generate_cohort(1, 12))[0]
    with served_bento(readmission_bento_home, "readmission:v1") as bento:
        config = sidecar_config(bento.url, tmp_path)
        with running_sidecar(config, tmp_path) as sidecar:
            assert post(f"{sidecar.url}/predict", request.body, token=None)[0] == 200
            bento.stop()
            status, answer = post(f"{sidecar.url}/predict", request.body, token=None)
            assert (status, answer) == (502, {"error": "the model server is unreachable"})
            assert get(f"{sidecar.url}/readyz")[0] == 503
            assert get(f"{sidecar.url}/healthz")[0] == 200
            with served_bento(readmission_bento_home, "readmission:v1", port=bento.port):
                assert get(f"{sidecar.url}/readyz")[0] == 200
                assert post(f"{sidecar.url}/predict", request.body, token=None)[0] == 200
    assert sidecar.process.returncode == 0
