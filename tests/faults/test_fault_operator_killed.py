"""Fault: the operator is killed between any two side effects of a rollback or a recalibration.

One evaluation of a ClinicalModel whose serving revision confidently
violates an equity SLO makes several changes in the API server: it applies
the children, creates the recalibration Job (and its manifest), creates the
decision records and their Events, writes status, and applies the Deployment
of the revision it rolls back to. The operator's own evaluation
(operator.reconcile.reconcile_model) runs against an API server kept in
memory that kills it before the k-th change, for every k; a restarted
operator then evaluates again from what the API server holds, and twice more.
What must hold, for every k: exactly one Rollback record, one Event per
record, and for a recalibration exactly one Job and one Recalibrate record;
the status logs each action once and the Deployment serves the last good
revision.
"""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts import names
from equiguard.contracts.status import RevisionRecord
from equiguard.operator.manifests import Images
from equiguard.operator.reconcile import Settings, reconcile_model
from helpers.standins import MemoryApi, OperatorKilled, stand_in_pods, violated_share

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1, V2 = "readmission:v1", "readmission:v2"
SETTINGS = Settings(
    Images(sidecar="sidecar:1", job="operator:1", model="runtime:1"), stats_timeout=5
)
EVALUATIONS_AFTER_RESTART = 3


def model_body(action: str) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=1)
    spec = body["spec"]
    spec["model"]["bento"] = V2
    spec["slos"] = [{**spec["slos"][0], "action": action, "consecutiveBreaches": 1}]
    spec["evaluation"] = {"interval": "1m", "cooldown": "1h", "qualificationPeriod": "1h"}
    spec["changeControl"] = {
        "methods": ["platt"],
        "maxRecalibrations": {"count": 1, "period": "7d"},
    }
    v1, v2 = (
        RevisionRecord(
            revision=tag,
            image="runtime:1",
            generation=1,
            first_served=START - timedelta(days=3),
            last_served=START - timedelta(minutes=1),
            met_since=None,
            qualified_at=START - timedelta(days=1) if tag == V1 else None,
            quarantined_at=None,
            quarantine_reason="",
        )
        for tag in (V1, V2)
    )
    body["status"] = {"servingRevision": V2, "revisions": [v1.write(), v2.write()]}
    return body


def changes_of_one_evaluation(action: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many changes an uninterrupted evaluation makes (the kill points to try)."""
    api = MemoryApi(model_body(action))
    share = violated_share(api.model())

    async def once() -> None:
        async with stand_in_pods(share, monkeypatch):
            await reconcile_model(api, api.model(), START, SETTINGS)  # type: ignore[arg-type]

    asyncio.run(once())
    return api.changes


def run_with_a_kill(action: str, kill_at: int, monkeypatch: pytest.MonkeyPatch) -> MemoryApi:
    api = MemoryApi(model_body(action))
    share = violated_share(api.model())

    async def scenario() -> None:
        async with stand_in_pods(share, monkeypatch):
            api.kill_at = kill_at
            with pytest.raises(OperatorKilled):
                await reconcile_model(api, api.model(), START, SETTINGS)  # type: ignore[arg-type]
            # A new operator process: nothing remembered but what the API server holds.
            for minute in range(1, EVALUATIONS_AFTER_RESTART + 1):
                now = START + timedelta(minutes=minute)
                await reconcile_model(api, api.model(), now, SETTINGS)  # type: ignore[arg-type]

    asyncio.run(scenario())
    return api


def assert_acted_once(api: MemoryApi, action: str) -> None:
    created = Counter(kind for kind, _, _ in api.created)
    decisions = Counter(record["spec"]["decision"] for record in api.of_kind("EquityDecision"))
    expected = {"Rollback": 1} | ({"Recalibrate": 1} if action == "Recalibrate" else {})
    assert {d: decisions[d] for d in expected} == expected
    assert set(Counter(key for key in api.created).values()) == {1}  # nothing created twice
    assert created["Event"] == created["EquityDecision"]
    assert created["Job"] == (1 if action == "Recalibrate" else 0)
    status = api.model()["status"]
    logged = Counter(entry["action"] for entry in status["actions"])
    assert dict(logged) == expected
    assert status["servingRevision"] == V1
    (deployment,) = api.of_kind("Deployment")
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    assert template[names.REVISION_ANNOTATION] == V1


@pytest.mark.parametrize("action", ["Rollback", "Recalibrate"])
def test_an_operator_killed_between_any_two_side_effects_acts_exactly_once(
    action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = changes_of_one_evaluation(action, monkeypatch)
    assert points >= (7 if action == "Rollback" else 10)  # every side effect is a kill point
    for kill_at in range(points):
        api = run_with_a_kill(action, kill_at, monkeypatch)
        try:
            assert_acted_once(api, action)
        except AssertionError as failure:
            raise AssertionError(f"killed before change {kill_at}: {failure}") from failure
