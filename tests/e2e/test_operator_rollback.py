"""A planted TPR gap leads to a rollback to the last good revision, with its evidence.

Revision v1 of the readmission model has no gap between Black and White
patients; revision v2 uses prior-year cost, which the cohort under-records for
Black patients, and its TPR at 0.30 is about 0.35 for them against 0.72 (see
docs/readmission-example.md). Real predictions go through the real sidecars to
real BentoML servers on the local node; outcomes follow.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from helpers.kube import Kubectl
from kubernetes import client
from test_operator_harness import (
    INTERVAL,
    TICK,
    Models,
    OperatorProcess,
    cohort,
    manifest,
    traffic,
    wait_for,
)

pytest_plugins = ["test_operator_harness"]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

V1, V2 = "readmission:v1", "readmission:v2"
ROWS = 2500  # about 125 positives among Black patients: enough for the v2 gap


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


def _qualify_v1(models: Models, enforcement: str) -> None:
    models.apply(manifest(V1, enforcement=enforcement))
    traffic(models.serving(V1), cohort(ROWS, seed=11), "v1-")
    wait_for(lambda: models.status().get("lastGoodRevision") == V1, 90, "v1 to qualify")


def _records(models: Models, decision: str) -> list[dict[str, Any]]:
    return [r for r in models.records() if r["spec"]["decision"] == decision]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_rolls_back_to_the_last_good_revision_within_two_intervals_of_the_evidence(
    operator: OperatorProcess,
    models: Models,
    namespace: str,
    api_client: client.ApiClient,
) -> None:
    _qualify_v1(models, "Enforce")
    models.patch_spec("readmission-risk", {"model": {"bento": V2}})
    traffic(models.serving(V2), cohort(ROWS, seed=12), "v2-")
    evidence_complete = time.time()

    rollback = wait_for(lambda: _records(models, "Rollback"), 60, "a Rollback record")[0]
    # Two breaching evaluations confirm the violation; the tick and whole-second
    # record times add at most a couple of seconds.
    assert _seconds(rollback["spec"]["time"]) - evidence_complete <= 2 * INTERVAL + TICK + 2
    spec = rollback["spec"]
    assert (spec["revision"], spec["targetRevision"], spec["dryRun"]) == (V2, V1, False)
    assert spec["slo"] == "tpr-gap-race" and spec["verdict"] == "Violated"
    evidence = spec["evidence"]
    assert evidence["metric"] == "tpr" and evidence["threshold"] == "0.1"
    assert float(evidence["lower"]) > 0.10  # breached on the bound, not the estimate
    assert evidence["worstGroup"] in ("Black vs White", "White vs Black")
    groups = {g["group"]: g for g in evidence["groups"]}
    assert float(groups["Black"]["estimate"]) < float(groups["White"]["estimate"]) - 0.2
    assert groups["Black"].get("n", 0) >= 50, evidence

    # The model serves v1 again, v2 is quarantined and the spec shows as not applied.
    models.serving(V1)
    status = models.status()
    assert status["lastAction"] == f"Rollback {V2} to {V1}"
    v2 = next(r for r in status["revisions"] if r["revision"] == V2)
    assert v2["quarantinedAt"] and "tpr-gap-race" in v2["quarantineReason"]
    applied = models.condition("RevisionApplied")
    assert (applied["status"], applied["reason"]) == ("False", "RevisionQuarantined")
    assert "equiguard.io/retry-revision" in applied["message"]
    assert models.condition("Degraded")["reason"] == "RolledBack"
    deployment = models.read("apps/v1", "Deployment", "readmission-risk")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["equiguard.io/revision"] == V1
    reasons = models.event_reasons()
    assert {"RollbackTriggered", "SLOViolated", "RevisionQualified"} <= reasons

    # Later evaluations neither roll back again nor bring v2 back.
    time.sleep(3 * INTERVAL)
    assert len(_records(models, "Rollback")) == 1
    assert models.status()["servingRevision"] == V1


def test_dry_run_records_the_rollback_and_changes_nothing(
    operator: OperatorProcess,
    models: Models,
    namespace: str,
    api_client: client.ApiClient,
) -> None:
    _qualify_v1(models, "DryRun")
    models.patch_spec("readmission-risk", {"model": {"bento": V2}})
    traffic(models.serving(V2), cohort(ROWS, seed=12), "v2-")

    rollback = wait_for(lambda: _records(models, "Rollback"), 60, "a dry-run Rollback record")[0]
    assert rollback["spec"]["dryRun"] is True
    assert "would roll back" in rollback["spec"]["message"]
    time.sleep(2 * INTERVAL)
    status = models.status()
    assert status["servingRevision"] == V2
    assert all("quarantinedAt" not in r for r in status["revisions"])
    assert status["lastAction"].startswith("DryRun: would roll back")
    assert models.condition("RevisionApplied")["status"] == "True"
    deployment = models.read("apps/v1", "Deployment", "readmission-risk")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["equiguard.io/revision"] == V2
    assert models.condition("SLOsMet")["reason"] == "SLOViolated"
    assert "DryRunRollback" in models.event_reasons()


def test_traffic_without_a_gap_leads_to_no_action(
    operator: OperatorProcess,
    models: Models,
) -> None:
    models.apply(manifest(V1))
    ips = models.serving(V1)
    traffic(ips, cohort(ROWS, seed=11), "a-")
    traffic(ips, cohort(ROWS, seed=13), "b-")
    wait_for(lambda: models.condition("SLOsMet").get("status") == "True", 60, "the SLO met")
    time.sleep(3 * INTERVAL)
    decisions = {r["spec"]["decision"] for r in models.records()}
    assert not decisions & {"Rollback", "Recalibrate", "ActionSuppressed", "Alert"}
    status = models.status()
    assert status["servingRevision"] == V1 and status["lastAction"] == ""
    assert status["actions"] == []
    assert status["sloSummary"] == "1/1"
