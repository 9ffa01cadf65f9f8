"""One evaluation with spec.earlyWarning, from gathering to acting, without a cluster.

Two stand-in sidecars on loopback serve /v1/stats (labelled, the reference)
and /v1/scores (the window's scores) as two pods of the serving revision
would; the API server is kept in memory. The operator's own code reads them,
assesses, decides and writes status, records and Events.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from aiohttp import web
from equiguard.contracts import names
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.operator.manifests import Images
from equiguard.operator.reconcile import Settings, reconcile_model
from helpers.standins import PODS, STATS_TOKEN, MemoryApi

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V2 = "readmission:v2"
SETTINGS = Settings(
    Images(sidecar="sidecar:1", job="operator:1", model="runtime:1"), stats_timeout=2
)
RACES = ("White", "Black", "Asian", "Hispanic", "Other")


def manifest(action: str = "Alert") -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=1)
    body["spec"]["model"]["bento"] = V2
    body["spec"]["earlyWarning"]["action"] = action
    return body


def _rows(rng: np.random.Generator, shifted: bool, n: int) -> tuple[list[str], np.ndarray]:
    race = [RACES[i] for i in rng.integers(0, len(RACES), n)]
    a = np.where(np.array(race) == "Black", 4.0 if shifted else 2.0, 2.0)
    return race, rng.beta(a, 5.0)


def shares(body: dict[str, Any], shifted: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """One pod's labelled reference (calibrated scores) and its window's scores."""
    spec = parse_model(body)
    layout = CellLayout.from_spec(spec.subgroups)
    rng = np.random.default_rng(16)
    race, scores = _rows(rng, False, 20000)
    labels = (rng.random(len(scores)) < scores).astype(np.int64)
    reference = Statistics.empty(layout.cells, spec.threshold)
    reference.update(layout.assign({"race": race}, len(race)), scores, labels)
    race, scores = _rows(rng, shifted, 6000)
    window = ScoreStatistics.empty(layout.cells, spec.threshold)
    window.update(layout.assign({"race": race}, len(race)), scores)
    return reference.to_dict(), window.to_dict()


@asynccontextmanager
async def sidecars(
    body: dict[str, Any], shifted: bool, monkeypatch: pytest.MonkeyPatch, down: str = ""
) -> AsyncIterator[list[str]]:
    """Both stand-in pods (but `down`) answering; returns the revisions asked for."""
    with socket.socket() as probe:
        probe.bind((PODS[0], 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(names, "SIDECAR_PORT", port)
    labelled, scores = shares(body, shifted)
    asked: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {STATS_TOKEN}":
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        asked.append(f"{request.path} {request.query.get('revision', '')}")
        return web.json_response(scores if request.path == "/v1/scores" else labelled)

    runners = []
    for pod in PODS:
        if pod == down:
            continue
        app = web.Application()
        app.router.add_get("/v1/stats", answer)
        app.router.add_get("/v1/scores", answer)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, pod, port).start()
        runners.append(runner)
    try:
        yield asked
    finally:
        for runner in runners:
            await runner.cleanup()


def evaluate(
    body: dict[str, Any], shifted: bool, monkeypatch: pytest.MonkeyPatch, down: str = ""
) -> tuple[MemoryApi, list[str]]:
    api = MemoryApi(body)

    async def once() -> list[str]:
        async with sidecars(body, shifted, monkeypatch, down) as asked:
            await reconcile_model(api, api.model(), NOW, SETTINGS)  # type: ignore[arg-type]
            return asked

    return api, asyncio.run(once())


def condition(api: MemoryApi) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in api.model()["status"]["conditions"] if c["type"] == "EarlyWarning"
    )
    return found


def decisions(api: MemoryApi) -> list[str]:
    return sorted(record["spec"]["decision"] for record in api.of_kind("EquityDecision"))


def test_shifted_scores_raise_a_warning_with_a_record_an_event_and_no_rollback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, asked = evaluate(manifest(), shifted=True, monkeypatch=monkeypatch)
    warning = api.model()["status"]["earlyWarning"]
    assert warning["state"] == "Warning" and condition(api)["status"] == "True"
    assert any(s["dimension"] == "race" and s["group"] == "Black" for s in warning["signals"])
    # No revision has qualified yet: the serving revision's own outcomes are the reference.
    assert warning["reference"] == {"revision": V2, "source": "ServingRevision", "window": "30d"}
    assert f"/v1/scores {V2}" in asked and f"/v1/stats {V2}" in asked
    assert "EarlyWarning" in decisions(api)
    record = next(
        r for r in api.of_kind("EquityDecision") if r["spec"]["decision"] == "EarlyWarning"
    )
    assert record["spec"]["earlyWarning"]["signals"]
    events = [e for e in api.of_kind("Event") if e["reason"] == "EarlyWarningRaised"]
    assert len(events) == 1
    assert api.model()["status"]["servingRevision"] == V2
    assert not {"Rollback", "Recalibrate"} & set(decisions(api))


def test_no_count_leaves_in_the_warnings_status(monkeypatch: pytest.MonkeyPatch) -> None:
    api, _ = evaluate(manifest(), shifted=True, monkeypatch=monkeypatch)
    warning = api.model()["status"]["earlyWarning"]
    for item in (*warning["signals"], *warning["estimates"]):
        assert not {"n", "count", "predictions"} & item.keys()


def test_unchanged_scores_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    api, _ = evaluate(manifest(), shifted=False, monkeypatch=monkeypatch)
    warning = api.model()["status"]["earlyWarning"]
    assert warning["state"] == "Clear", warning["message"]
    assert condition(api)["status"] == "False"
    assert "EarlyWarning" not in decisions(api)
    estimate = warning["estimates"][0]
    assert estimate["slo"] == "tpr-gap-race" and estimate["judged"] and not estimate["breached"]


def test_a_pod_that_does_not_answer_makes_the_warning_unavailable_not_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, _ = evaluate(manifest(), shifted=True, monkeypatch=monkeypatch, down=PODS[1])
    warning = api.model()["status"]["earlyWarning"]
    assert (warning["state"], warning["reason"]) == ("Unavailable", "StatisticsUnavailable")
    assert condition(api)["status"] == "Unknown"
    assert "EarlyWarning" not in decisions(api)


def test_holdrollout_keeps_a_warned_revision_from_qualifying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, _ = evaluate(manifest("HoldRollout"), shifted=True, monkeypatch=monkeypatch)
    warning = api.model()["status"]["earlyWarning"]
    assert warning["holdingRollout"] and "does not qualify" in warning["holdMessage"]
