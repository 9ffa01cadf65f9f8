"""The Recalibrate action on the real control plane: exactly one Job, even across an operator
killed mid-way; and the whole path from a violated equity SLO to an approved, recalibrated
revision that serves and meets its SLOs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from equiguard.cohort import Cohort, generate_cohort
from equiguard.contracts.names import calibration_configmap_name, recalibration_job_name
from equiguard.governance import modelcard
from helpers.kube import Kubectl
from helpers.postgres import PostgresServer
from helpers.recalibration import model_scores
from kubernetes import client
from test_operator_harness import (
    BENTOML_HOME,
    EQUIGUARD,
    INTERVAL,
    Models,
    OperatorProcess,
    delete_models,
    manifest,
    positives_to_demonstrate,
    records,
    rows_for_positives,
    traffic,
    wait_for,
)

REVIEWER = "Equity Review Panel"  # who approves: a role, as in the demo

pytest_plugins = ["test_operator_harness"]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

V1, V2 = "readmission:v1", "readmission:v2"
MODEL, SLO = "readmission-risk", "tpr-gap-race"
# Half White, half Black patients: enough labelled outcomes of both compared groups
# (the SLO's 50 positives, the envelope's 200 outcomes to fit and 200 to judge) quickly.
BALANCED = {"White": 0.5, "Black": 0.5}
# This test's SLO allows a TPR gap of 0.20: v2's gap (0.35 vs 0.72) is still a
# confident breach, and Met is demonstrated with a few hundred positives per group
# rather than the example's couple of thousand, on the predict path too.
THRESHOLD = "0.20"
# v1's and the recalibrated revision's TPR at 0.30 is about 0.62 in both groups;
# cohorts are planned for a gap up to 0.03.
TPR, GAP = 0.62, 0.03


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


def test_recalibrate_creates_exactly_one_job_when_the_operator_is_killed_right_after(
    operator: OperatorProcess,
    models: Models,
) -> None:
    models.apply(manifest(V2, action="Recalibrate"))
    traffic(models.serving(V2), _balanced(2500, seed=12), "v2-")

    # Kill the operator the moment its Job appears, before it can finish the
    # bookkeeping of that evaluation (status, record, Event) in the usual way.
    jobs: list[str] = wait_for(models.jobs, 60, "the recalibration Job", every=0.05)
    operator.kill()
    interrupted = not models.status().get("actions")
    print(f"killed before the status recorded the action: {interrupted}")
    expected = recalibration_job_name(MODEL, V2, SLO)
    assert jobs == [expected]

    operator.start()
    restarted = time.time()
    wait_for(
        lambda: (
            models.status().get("lastEvaluationTime", "")
            >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(restarted + 3 * INTERVAL))
        ),
        90,
        "three evaluations after the restart",
    )
    assert models.jobs() == [expected]
    records = [r for r in models.records() if r["spec"]["decision"] == "Recalibrate"]
    assert [r["spec"]["job"] for r in records] == [expected]
    status = models.status()
    assert [(a["action"], a["slo"]) for a in status["actions"]] == [("Recalibrate", SLO)]
    assert status["lastAction"] == f"Recalibrate {V2} ({expected})"
    # With no good revision to fall back to, the violating one keeps serving.
    assert status["servingRevision"] == V2
    assert "RecalibrationJobCreated" in models.event_reasons()


def _balanced(n: int, seed: int) -> Cohort:
    return generate_cohort(n, seed, race_mix=BALANCED)


def _rows_to_demonstrate(seed: int) -> int:
    """Balanced rows with which this test's SLO can be demonstrated Met."""
    slo = _recalibrating(V1)["spec"]["slos"][0]
    return rows_for_positives(positives_to_demonstrate(slo, TPR, GAP), BALANCED, seed)


def _scored_records(models: Models, revision: str, n: int, seed: int, prefix: str) -> None:
    """`n` balanced rows scored offline by the real model of `revision`, with their
    outcomes, in bulk through a sidecar serving it (as a batch scorer sends them)."""
    tag = "readmission_risk:" + revision.split(":")[1]
    scores = model_scores(BENTOML_HOME, tag, n, seed, _scratch(models), BALANCED)
    records(models.serving(revision)[0], _balanced(n, seed), scores, prefix)


def _scratch(models: Models) -> Path:
    folder = Path(f"/var/tmp/equiguard-e2e-{models.namespace}")
    folder.mkdir(exist_ok=True)
    return folder


def _store_and_job_identity(kubectl: Kubectl, namespace: str, dsn: str) -> None:
    """The DSN Secret the sidecars and the Job read, and the Job's right to write its result."""
    kubectl("create", "secret", "generic", "-n", namespace, "readmission-store",
            f"--from-literal=dsn={dsn}")  # fmt: skip
    kubectl("create", "serviceaccount", "-n", namespace, "equiguard-recalibration")
    kubectl("create", "role", "-n", namespace, "equiguard-recalibration",
            "--verb=get,create,update,patch", "--resource=configmaps")  # fmt: skip
    kubectl("create", "rolebinding", "-n", namespace, "equiguard-recalibration",
            "--role=equiguard-recalibration",
            f"--serviceaccount={namespace}:equiguard-recalibration")  # fmt: skip


def _recalibrating(bento: str) -> dict[str, Any]:
    body = manifest(bento, action="Recalibrate")
    spec = body["spec"]
    spec["slos"][0]["threshold"] = THRESHOLD
    spec["outcomes"]["store"] = {"type": "postgresql", "dsnSecret": {"name": "readmission-store"}}
    spec["changeControl"] = {
        "methods": ["platt", "isotonic", "groupThreshold"],
        "approvalRequired": True,
        "minOutcomesPerGroup": 200,
    }
    spec["evaluation"] = {
        "interval": f"{INTERVAL}s",
        "qualificationPeriod": "20s",
        "cooldown": "10s",
        "maxActionsPerDay": 5,
    }
    return body


def _awaiting_approval(models: Models) -> dict[str, Any] | None:
    """The AwaitingApproval condition once True; fails at once if the recalibration failed."""
    recalibrated = models.condition("Recalibrated")
    assert recalibrated.get("reason") not in ("RecalibrationFailed", "CriteriaNotMet"), recalibrated
    awaiting = models.condition("AwaitingApproval")
    return awaiting if awaiting.get("status") == "True" else None


def _decisions(models: Models) -> list[dict[str, Any]]:
    return [r["spec"] for r in models.records()]


def _slo(models: Models) -> dict[str, Any]:
    return next((s for s in models.status().get("slos", []) if s["name"] == SLO), {})


def test_a_violating_revision_is_rolled_back_recalibrated_approved_and_serves_within_its_slos(
    operator: OperatorProcess,
    models: Models,
    kubectl: Kubectl,
    namespace: str,
    postgres_server: PostgresServer,
) -> None:
    database = postgres_server.create_database()
    try:
        _store_and_job_identity(kubectl, namespace, postgres_server.pod_dsn(database))
        _path_to_an_approved_recalibration(models, namespace)
    finally:
        delete_models(kubectl, namespace)
        postgres_server.drop_database(database)
        shutil.rmtree(_scratch(models), ignore_errors=True)


def _path_to_an_approved_recalibration(models: Models, namespace: str) -> None:
    job = recalibration_job_name(MODEL, V2, SLO)

    # v1 qualifies as the last good revision.
    models.apply(_recalibrating(V1))
    _scored_records(models, V1, _rows_to_demonstrate(21), 21, "v1-")
    wait_for(lambda: models.status().get("lastGoodRevision") == V1, 180, "v1 to qualify")

    # v2 is rolled out; its TPR gap is confirmed: back to v1, and v2 is recalibrated.
    # Twice the rows: the Job fits on some of v2's outcomes and must demonstrate the
    # candidate's SLO Met on the others, held out.
    models.patch_spec(MODEL, {"model": {"bento": V2}})
    _scored_records(models, V2, 2 * _rows_to_demonstrate(22), 22, "v2-")
    wait_for(lambda: models.status().get("servingRevision") == V1, 90, "the fallback to v1")
    wait_for(models.jobs, 30, "the recalibration Job")
    assert models.jobs() == [job]
    status = models.status()
    assert [a["action"] for a in status["actions"]] == ["Rollback", "Recalibrate"]
    v2 = next(r for r in status["revisions"] if r["revision"] == V2)
    assert v2.get("quarantinedAt")
    models.serving(V1)

    # The Job runs on the cluster's node and writes its result with the impact assessment.
    awaiting = wait_for(lambda: _awaiting_approval(models), 420, "a candidate awaiting approval",
                        every=2)  # fmt: skip
    result = models.read("v1", "ConfigMap", f"{job}-result")["data"]
    assert result["outcome"] == "Published", result.get("message")
    candidate = result["candidateRevision"]
    assert candidate.startswith(f"{V2}-recal-") and candidate in awaiting["message"]
    assessment = json.loads(result["assessment.json"])
    published = next(c for c in assessment["candidates"] if c["held"])
    assert published["criteria"] and all(c["held"] for c in published["criteria"])
    assert assessment["before"] and assessment["outcomes"]["holdout"] > 0
    assert models.status()["servingRevision"] == V1  # nothing serves before the approval
    assert models.jobs() == [job]

    # A named person approves it with the real CLI; the candidate serves.
    approved = subprocess.run(
        [EQUIGUARD, "approve", MODEL, candidate, "--by", REVIEWER,
         "--reason", "Equity board 2026-11", "--namespace", namespace],
        env={**os.environ, "KUBECONFIG": models.kubectl.kubeconfig},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    ips = models.serving(candidate, timeout=240)
    status = models.status()
    entry = next(r for r in status["revisions"] if r["revision"] == candidate)
    assert entry["derivedFrom"] == V2
    # It reached the pods as its calibration's immutable ConfigMap, not through the host.
    configmap = calibration_configmap_name(MODEL, candidate)
    assert models.read("v1", "ConfigMap", str(configmap)).get("immutable") is True
    pods = [
        p
        for p in models.pods()
        if p["metadata"].get("annotations", {}).get("equiguard.io/revision") == candidate
    ]
    assert pods and all("hostPath" not in v for p in pods for v in p["spec"]["volumes"])
    assert {"name": "calibration", "configMap": {"name": configmap, "defaultMode": 420}} in (
        pods[0]["spec"]["volumes"]
    )

    # With enough traffic through its predict path the recalibrated revision's SLO
    # is demonstrated Met.
    traffic(ips, _balanced(_rows_to_demonstrate(23), seed=23), "c-")
    wait_for(
        lambda: _slo(models).get("revision") == candidate and _slo(models).get("verdict") == "Met",
        180,
        "the SLO Met on the candidate",
    )
    assert models.status()["servingRevision"] == candidate
    assert models.jobs() == [job]

    records = _decisions(models)
    kinds = [r["decision"] for r in records]
    for decision in ("Rollback", "Recalibrate", "RecalibrationPublished", "Promote"):
        assert kinds.count(decision) == 1, kinds
    assert kinds.index("Rollback") < kinds.index("RecalibrationPublished") < kinds.index("Promote")
    rollback = next(r for r in records if r["decision"] == "Rollback")
    assert (rollback["revision"], rollback["targetRevision"]) == (V2, V1)
    recalibrate = next(r for r in records if r["decision"] == "Recalibrate")
    assert (recalibrate["revision"], recalibrate["job"]) == (V2, job)
    promote = next(r for r in records if r["decision"] == "Promote")
    assert promote["targetRevision"] == candidate
    assert promote["approval"]["by"] == REVIEWER
    assert promote["approval"]["reason"] == "Equity board 2026-11"
    assert promote["recalibration"]["criteria"] and all(
        c["held"] for c in promote["recalibration"]["criteria"]
    )
    reasons = models.event_reasons()
    assert {"RollbackTriggered", "RecalibrationJobCreated", "RecalibrationPromoted"} <= reasons

    # The change record, written by the real CLI from what the Job and the operator
    # recorded, holds the Job's own numbers.
    first = _check_change_record(models, namespace, job, result, assessment, published, candidate)
    _check_model_card(models, namespace, candidate)
    _check_the_change_record_outlives_the_job(models, namespace, job, first)


def _check_model_card(models: Models, namespace: str, candidate: str) -> None:
    """The Applied Model Card of the live model is valid and shows its live verdict."""
    out = _scratch(models) / "model-card"
    written = subprocess.run(
        [EQUIGUARD, "modelcard", MODEL, "--namespace", namespace, "--output-dir", str(out)],
        env={**os.environ, "KUBECONFIG": models.kubectl.kubeconfig},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    xml = (out / f"{MODEL}-applied-model-card.xml").read_text(encoding="utf-8")
    xmlschema.XMLSchema(str(Path(modelcard.__file__).parent / modelcard.SCHEMA_FILE)).validate(xml)
    card = ET.fromstring(xml)
    ns = {"mc": modelcard.NAMESPACE}
    assert card.findtext("mc:ReleaseInfo/mc:ReleaseVersion", namespaces=ns) == candidate
    labels = [e.text for e in card.iterfind(".//mc:FairnessEquity//mc:Label", ns)]
    assert f"{SLO} (Met)" in labels


def _check_change_record(
    models: Models,
    namespace: str,
    job: str,
    result: dict[str, str],
    assessment: dict[str, Any],
    published: dict[str, Any],
    candidate: str,
) -> dict[str, Any]:
    out = _scratch(models) / "change-records"
    written = _write_change_record(models, namespace, out)
    assert written.returncode == 0, written.stderr
    document = json.loads((out / f"{MODEL}-change-{job}.json").read_text(encoding="utf-8"))
    markdown = (out / f"{MODEL}-change-{job}.md").read_text(encoding="utf-8")
    assert document["change"]["name"] == job and document["change"]["outcome"] == "Published"
    described = document["descriptionOfModifications"]
    assert (described["method"], described["dimension"]) == (result["method"], result["dimension"])
    assert (described["revisionBefore"], described["revisionAfter"]) == (V2, candidate)
    protocol = document["modificationProtocol"]
    data = protocol["dataManagement"]
    assert data["store"] == "postgresql"
    assert (data["window"], data["outcomes"]) == (assessment["window"], assessment["outcomes"])
    counts = {g: b["n"] for g, b in assessment["before"]["metrics"][result["dimension"]].items()}
    assert {c["group"]: c["n"] for c in data["countsPerGroup"]} == counts
    assert protocol["retraining"]["methodsAllowed"] == assessment["envelope"]["methods"]
    criteria = protocol["performanceEvaluation"]["acceptanceCriteria"]
    assert [(c["name"], c["limit"], c["held"], c["checks"]) for c in criteria] == [
        (c["name"], c["limit"], c["held"], c["checks"]) for c in published["criteria"]
    ]
    approval = protocol["updateProcedures"]["approval"]
    assert (approval["by"], approval["revision"]) == (REVIEWER, candidate)
    impact = {g["group"]: g["metrics"] for g in document["impactAssessment"]["groups"]}
    after = published["after"]["metrics"][result["dimension"]]
    for group, block in assessment["before"]["metrics"][result["dimension"]].items():
        for metric in ("tpr", "netBenefit", "calibrationSlope"):
            assert impact[group][metric]["before"] == block[metric]
            assert impact[group][metric]["after"] == after[group][metric]
    versions = document["versionControlAndLabelling"]
    assert versions["serving"] == candidate
    assert versions["labelling"]["intendedUse"] == models.get()["spec"]["intendedUse"]
    # The Markdown says the same for people, in the guidance's sections.
    for heading in (
        "## 1. Description of modifications",
        "## 2. Modification protocol",
        "## 3. Impact assessment",
        "## 4. Version control and labelling",
    ):
        assert heading in markdown
    assert f"{assessment['outcomes']['holdout']} held out to judge" in markdown
    assert f"approved by {REVIEWER}" in markdown and candidate in markdown
    return document


def _write_change_record(
    models: Models, namespace: str, out: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EQUIGUARD, "pccp", MODEL, "--namespace", namespace, "--output-dir", str(out)],
        env={**os.environ, "KUBECONFIG": models.kubectl.kubeconfig},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _check_the_change_record_outlives_the_job(
    models: Models, namespace: str, job: str, first: dict[str, Any]
) -> None:
    """A change-control record is kept as long as the model: deleting the Job (as its
    TTL or a cleanup would) leaves its result, now owned by the model alone."""
    models.kubectl("delete", "job", job, "-n", namespace, "--cascade=background", "--wait=true")

    def owners() -> list[str] | None:
        found = json.loads(models.kubectl(
            "get", "configmap", f"{job}-result", "-n", namespace, "-o", "json"
        ).stdout)  # fmt: skip
        kinds = [o["kind"] for o in found["metadata"].get("ownerReferences") or []]
        return kinds if "Job" not in kinds else None  # the collector has been by

    assert wait_for(owners, 120, "the collector to release the result from its Job") == [
        "ClinicalModel"
    ]
    out = _scratch(models) / "change-records-after-the-job"
    written = _write_change_record(models, namespace, out)
    assert written.returncode == 0, written.stderr
    again = json.loads((out / f"{MODEL}-change-{job}.json").read_text(encoding="utf-8"))
    assert again == first
