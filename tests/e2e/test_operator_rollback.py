"""A planted TPR gap leads to a rollback to the last good revision, with its evidence.

Revision v1 of the readmission model has no gap between Black and White
patients; revision v2 uses prior-year cost, which the cohort under-records for
Black patients, and its TPR at 0.30 is about 0.35 for them against 0.72 (see
docs/readmission-example.md). Real predictions go through the real sidecars to
real BentoML servers in containers on the node; outcomes follow. Revision v1 qualifies
only once its SLO is demonstrated Met, which takes a couple of thousand positives
per group: those arrive in bulk as records scored by the real v1 model, as a
batch scorer sends them (the predict path is what v2's traffic goes through).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.kube import Kubectl
from helpers.recalibration import model_scores
from kubernetes import client
from test_operator_harness import (
    INTERVAL,
    TICK,
    Models,
    OperatorProcess,
    cohort,
    manifest,
    positives_to_demonstrate,
    records,
    rows_for_positives,
    traffic,
    wait_for,
)

pytest_plugins = ["test_operator_harness"]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

V1, V2 = "readmission:v1", "readmission:v2"
# Half White, half Black patients: the two compared groups fill up together.
BALANCED = {"White": 0.5, "Black": 0.5}
# About 300 positives in each group: v2's gap of about 0.36 is then past the
# threshold on the monitoring bound (lower bound about 0.16), not just the estimate.
ROWS = 2500
# v1's TPR at 0.30 is about 0.62 in both groups; planned for a gap up to 0.03.
V1_TPR, V1_GAP = 0.62, 0.03


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


def _v1_outcomes(models: Models, bentos: Path, scratch: Path, seed: int, prefix: str) -> None:
    """Enough scored v1 records with outcomes for its SLO to be demonstrated Met."""
    slo = manifest()["spec"]["slos"][0]
    rows = rows_for_positives(positives_to_demonstrate(slo, V1_TPR, V1_GAP), BALANCED, seed)
    scores = model_scores(bentos, "readmission_risk:v1", rows, seed, scratch, BALANCED)
    records(models.serving(V1)[0], cohort(rows, seed, BALANCED), scores, prefix)


def _qualify_v1(models: Models, bentos: Path, scratch: Path, enforcement: str) -> None:
    models.apply(manifest(V1, enforcement=enforcement))
    _v1_outcomes(models, bentos, scratch, 11, "v1-")
    wait_for(lambda: models.status().get("lastGoodRevision") == V1, 180, "v1 to qualify")


def _records(models: Models, decision: str) -> list[dict[str, Any]]:
    return [r for r in models.records() if r["spec"]["decision"] == decision]


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_rolls_back_to_the_last_good_revision_within_two_intervals_of_the_evidence(
    operator: OperatorProcess,
    models: Models,
    bentos: Path,
    tmp_path: Path,
) -> None:
    _qualify_v1(models, bentos, tmp_path, "Enforce")
    models.patch_spec("readmission-risk", {"model": {"bento": V2}})
    traffic(models.serving(V2), cohort(ROWS, 12, BALANCED), "v2-")
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
    bentos: Path,
    tmp_path: Path,
) -> None:
    _qualify_v1(models, bentos, tmp_path, "DryRun")
    models.patch_spec("readmission-risk", {"model": {"bento": V2}})
    traffic(models.serving(V2), cohort(ROWS, 12, BALANCED), "v2-")

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
    bentos: Path,
    tmp_path: Path,
) -> None:
    models.apply(manifest(V1))
    traffic(models.serving(V1), cohort(ROWS, seed=13), "a-")
    _v1_outcomes(models, bentos, tmp_path, 11, "b-")
    wait_for(lambda: models.condition("SLOsMet").get("status") == "True", 180, "the SLO met")
    time.sleep(3 * INTERVAL)
    decisions = {r["spec"]["decision"] for r in models.records()}
    assert not decisions & {"Rollback", "Recalibrate", "ActionSuppressed", "Alert"}
    status = models.status()
    assert status["servingRevision"] == V1 and status["lastAction"] == ""
    assert status["actions"] == []
    assert status["sloSummary"] == "1/1"
