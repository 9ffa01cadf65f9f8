"""The recalibration's writes to the real API server: the Job's result ConfigMap
(owned by its Job, collected with it), a published calibration's ConfigMap (immutable,
named by its content, owned by the model) and `equiguard approve`'s approval.

Needs the local control plane (`make cluster-up`, KUBECONFIG exported)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts import names
from equiguard.contracts.approval import APPROVAL_ANNOTATION, read_approval
from helpers.kube import TEST_NAMESPACE_LABELS
from helpers.recalibration import (
    EVEN_RACE_MIX,
    NOW,
    cohort_outcomes,
    example_manifest,
    write_store,
)
from helpers.unavailable import unavailable
from kubernetes import client
from kubernetes import config as _config

pytestmark = pytest.mark.cluster
# The client is loosely typed; its objects are used as plain values here.
config: Any = _config
UNMEETABLE = {
    "name": "tpr-floor-sex", "metric": "tpr", "attribute": "sex", "comparison": "floor",
    "threshold": "0.95", "window": "7d", "minSamples": 50, "confidence": "0.95",
    "consecutiveBreaches": 2, "action": "Alert",
}  # fmt: skip


@pytest.fixture(scope="module")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        unavailable("no local control plane: run `make cluster-up` and export its KUBECONFIG")
    config.load_kube_config(path)
    return path


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    name = f"t-recal-{uuid.uuid4().hex[:8]}"
    core: Any = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name, "labels": TEST_NAMESPACE_LABELS}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def equiguard(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "equiguard", *argv], capture_output=True, text=True, timeout=300
    )


def test_the_result_configmap_is_owned_by_the_job_and_collected_with_it(
    namespace: str, tmp_path: Path
) -> None:
    batch: Any = client.BatchV1Api()
    job = batch.create_namespaced_job(namespace, {
        "metadata": {"name": "readmission-risk-recal-0123456789"},
        "spec": {"suspend": True, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "recalibrate", "image": "equiguard", "command": ["true"]}],
        }}},
    })  # fmt: skip
    manifest = example_manifest({"methods": ["platt"]})
    manifest["spec"]["slos"].append(copy.deepcopy(UNMEETABLE))
    _, outcomes = cohort_outcomes(manifest, 20_000, seed=51)
    write_store(tmp_path / "predictions.db", outcomes, "readmission:v1")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    name = f"{job.metadata.name}-result"
    run = equiguard(
        "recalibrate", "--model", str(tmp_path / "model.yaml"),
        "--store", str(tmp_path / "predictions.db"), "--out", str(tmp_path / "out"),
        "--until", str(NOW), "--window", "7d", "--slo", "tpr-gap-race",
        "--result-configmap", name, "--namespace", namespace,
        "--job-name", job.metadata.name, "--job-uid", job.metadata.uid,
    )  # fmt: skip
    assert run.returncode == 3, run.stderr
    core: Any = client.CoreV1Api()
    result = core.read_namespaced_config_map(name, namespace)
    assert result.data["outcome"] == "Refused" and result.data["reason"] == "CriteriaNotMet"
    assert result.data["servingRevision"] == "readmission:v1"
    assert result.data["candidateRevision"] == "" and result.data["slo"] == "tpr-gap-race"
    assessment = json.loads(result.data["assessment.json"])
    assert assessment["outcome"] == "Refused" and "tpr-floor-sex" in result.data["message"]
    assert result.data["summary.md"].startswith("# Recalibration of readmission-risk")
    assert result.metadata.labels["equiguard.io/model"] == "readmission-risk"
    assert result.metadata.labels["app.kubernetes.io/component"] == "recalibration-result"
    [owner] = result.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", job.metadata.name, job.metadata.uid)
    again = equiguard(*run.args[3:])  # a retried pod replaces the result
    assert again.returncode == 3, again.stderr
    batch.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map(name, namespace)
        except client.ApiException as error:
            assert error.status == 404
            return
        time.sleep(1)
    raise AssertionError("the result ConfigMap outlived its Job")


def model_body(namespace: str) -> dict[str, Any]:
    manifest = example_manifest()
    manifest["metadata"] = {"name": "readmission-risk", "namespace": namespace}
    return manifest


def test_an_approval_is_recorded_on_the_model_and_read_back(namespace: str) -> None:
    custom: Any = client.CustomObjectsApi()
    created = custom.create_namespaced_custom_object(
        "equiguard.io", "v1alpha1", namespace, "clinicalmodels", model_body(namespace)
    )
    run = equiguard(
        "approve", "readmission-risk", "readmission:v1-recal-0a1b2c3d4e", "--by", "Panel chair",
        "--reason", "Equity review board, minutes 2027-01-15", "-n", namespace,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "recorded approval of readmission:v1-recal-0a1b2c3d4e" in run.stdout
    model = custom.get_namespaced_custom_object(
        "equiguard.io", "v1alpha1", namespace, "clinicalmodels", "readmission-risk"
    )
    approval = read_approval(model["metadata"])
    assert approval is not None
    assert (approval.revision, approval.by) == ("readmission:v1-recal-0a1b2c3d4e", "Panel chair")
    assert approval.reason == "Equity review board, minutes 2027-01-15"
    # The spec is untouched, so the operator sees no new generation to roll out.
    assert model["spec"] == created["spec"]
    assert model["metadata"]["generation"] == created["metadata"]["generation"]
    second = equiguard(
        "approve", "readmission-risk", "readmission:v1-recal-9f8e7d6c5b", "--by", "CMIO",
        "--reason", "Second candidate reviewed", "-n", namespace,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    model = custom.get_namespaced_custom_object(
        "equiguard.io", "v1alpha1", namespace, "clinicalmodels", "readmission-risk"
    )
    assert json.loads(model["metadata"]["annotations"][APPROVAL_ANNOTATION])["by"] == "CMIO"


def test_approving_a_model_that_does_not_exist_fails_and_says_so(namespace: str) -> None:
    run = equiguard(
        "approve", "no-such-model", "readmission:v1-recal-0a1b2c3d4e", "--by", "Panel chair",
        "--reason", "review", "-n", namespace,
    )  # fmt: skip
    assert run.returncode == 1
    assert f"there is no ClinicalModel {namespace}/no-such-model" in run.stderr


def test_a_published_candidate_is_an_immutable_configmap_named_by_its_content_owned_by_the_model(
    namespace: str, tmp_path: Path, readmission_bento_home: Path
) -> None:
    custom: Any = client.CustomObjectsApi()
    model = custom.create_namespaced_custom_object(
        "equiguard.io", "v1alpha1", namespace, "clinicalmodels", model_body(namespace)
    )
    manifest = example_manifest()
    manifest["metadata"] = dict(model["metadata"])
    _, outcomes = cohort_outcomes(manifest, 150_000, seed=31, race_mix=EVEN_RACE_MIX)
    write_store(tmp_path / "predictions.db", outcomes, "readmission:v1")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    bentos = sorted((readmission_bento_home / "bentos" / "readmission").iterdir())
    argv = (
        "recalibrate", "--model", str(tmp_path / "model.yaml"),
        "--store", str(tmp_path / "predictions.db"), "--out", str(tmp_path / "out"),
        "--until", str(NOW), "--window", "7d", "--revision", "readmission:v1",
        "--bento-home", str(readmission_bento_home), "--calibration-configmap",
        "--namespace", namespace,
    )  # fmt: skip
    run = equiguard(*argv)
    assert run.returncode == 0, run.stderr
    tag = json.loads((tmp_path / "out" / "result.json").read_text())["candidateRevision"]
    digest = names.calibration_digest(tag)
    assert digest is not None
    core: Any = client.CoreV1Api()
    found = core.read_namespaced_config_map(f"readmission-risk-calibration-{digest}", namespace)
    assert found.immutable is True
    document = found.data["calibration.json"]
    assert hashlib.sha256(document.encode()).hexdigest()[:10] == digest
    assert json.loads(document)["base"]["bento"] == "readmission:v1"
    assert found.metadata.annotations["equiguard.io/revision"] == tag
    [owner] = found.metadata.owner_references
    assert (owner.kind, owner.uid) == ("ClinicalModel", model["metadata"]["uid"])
    # The base bento's store is only read: no bento was built.
    assert sorted((readmission_bento_home / "bentos" / "readmission").iterdir()) == bentos
    # A retried Job publishes the same ConfigMap again: nothing changes.
    again = equiguard(*argv)
    assert again.returncode == 0, again.stderr
    assert core.read_namespaced_config_map(found.metadata.name, namespace).metadata.uid == (
        found.metadata.uid
    )
    custom.delete_namespaced_custom_object(
        "equiguard.io", "v1alpha1", namespace, "clinicalmodels", "readmission-risk",
        propagation_policy="Background",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map(found.metadata.name, namespace)
        except client.ApiException as error:
            assert error.status == 404
            return
        time.sleep(1)
    raise AssertionError("the calibration ConfigMap outlived its model")
