"""The operator deploys a ClinicalModel on the real control plane and keeps it as declared."""

from __future__ import annotations

import copy
import json
import urllib.request

import pytest
from helpers.kube import Kubectl
from kubernetes import client
from test_operator_harness import EXAMPLE, REPO, Models, OperatorProcess, wait_for

# The operator fixtures (operator, bentos, operator_crds) live in the harness module.
pytest_plugins = ["test_operator_harness"]

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


# Every printer column of the CRD, in its order: a column missing from what
# kubectl prints fails the header lookup.
PRINTED = ["NAME", "READY", "SLOS", "WORST GAP", "NEEDS", "REVISION", "LAST ACTION", "AGE"]


def printed(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """The columns `kubectl get clm` prints for the first model, by header position."""
    header, row = kubectl("get", "clm", "-n", namespace).stdout.splitlines()[:2]
    starts = [header.index(name) for name in PRINTED]
    ends = [*starts[1:], len(row)]
    return {name: row[s:e].strip() for name, s, e in zip(PRINTED, starts, ends, strict=True)}


def test_the_example_applied_with_kubectl_runs_real_pods_and_shows_ready(
    operator: OperatorProcess,
    models: Models,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    # The model's pods must pass the "restricted" Pod Security profile.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl("apply", "-n", namespace, "-f", str(REPO / "examples/readmission/clinicalmodel.yaml"))

    ips = models.serving("readmission:v1")

    def ready() -> dict[str, str] | None:
        columns = printed(kubectl, namespace)
        return columns if columns["READY"] == "True" else None

    columns = wait_for(ready, 60, "READY True")
    assert columns["REVISION"] == "readmission:v1"
    assert columns["SLOS"] == "0/3"
    # A real BentoML server answers through the real sidecar.
    request = urllib.request.Request(
        f"http://{ips[0]}:8080/predict",
        method="POST",
        data=json.dumps(
            {
                "age": 70,
                "charlson_index": 3,
                "prior_admissions_12m": 2,
                "ed_visits_6m": 1,
                "length_of_stay_days": 5,
                "medication_count": 9,
                "prior_cost_12m": 12000.0,
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert 0.0 <= json.load(response)["risk"] <= 1.0
    status = models.status()
    assert status["observedGeneration"] == models.get()["metadata"]["generation"]
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "SLOsMet", "Degraded"}
    # No outcomes yet: the SLOs are Inconclusive, which is never a pass.
    assert models.condition("SLOsMet")["status"] == "Unknown"
    assert status["sloSummary"] == "0/3"


def test_children_are_owned_by_the_model_and_drift_is_undone(
    operator: OperatorProcess, models: Models, kubectl: Kubectl, namespace: str
) -> None:
    models.apply(copy.deepcopy(EXAMPLE))
    models.serving("readmission:v1")
    uid = models.get()["metadata"]["uid"]
    children = [
        models.read("apps/v1", "Deployment", "readmission-risk"),
        models.read("v1", "Service", "readmission-risk"),
        models.read("v1", "ConfigMap", "readmission-risk-sidecar"),
    ]
    for child in children:
        owners = child["metadata"]["ownerReferences"]
        assert [(o["uid"], o["controller"]) for o in owners] == [(uid, True)]

    kubectl("scale", "deployment/readmission-risk", "--replicas=3", "-n", namespace)
    kubectl("delete", "service/readmission-risk", "-n", namespace)
    wait_for(
        lambda: models.read("apps/v1", "Deployment", "readmission-risk")["spec"]["replicas"] == 1,
        30,
        "the Deployment scaled back to the declared replicas",
    )
    wait_for(
        lambda: models.kube.get("v1", "Service", namespace, "readmission-risk"),
        30,
        "the Service recreated",
    )


def test_liveness_and_metrics_endpoints_report_the_models(
    operator: OperatorProcess,
    models: Models,
) -> None:
    models.apply(copy.deepcopy(EXAMPLE))
    models.serving("readmission:v1")
    assert operator.get(operator.liveness_port, "/healthz")[0] == 200

    def metrics() -> str | None:
        text = operator.get(operator.metrics_port, "/metrics")[1]
        return text if 'slo="tpr-gap-race"' in text else None

    text = wait_for(metrics, 30, "verdict metrics")
    assert 'equiguard_slo_verdict{model="readmission-risk",namespace="' in text
    assert 'verdict="Inconclusive"} 1.0' in text


def test_a_child_the_api_server_refuses_becomes_a_condition_not_a_crash_loop(
    operator: OperatorProcess, models: Models
) -> None:
    body = copy.deepcopy(EXAMPLE)
    # Valid for the CRD, refused for the Deployment: requests above limits.
    body["spec"]["resources"] = {
        "model": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
    }
    models.apply(body)
    ready = wait_for(
        lambda: (c := models.condition("Ready")).get("reason") == "ChildRejected" and c,
        60,
        "the Ready condition to say the child was refused",
    )
    assert ready["status"] == "False"
    assert "must be less than or equal to cpu limit" in ready["message"]
    assert operator.process is not None and operator.process.poll() is None
    # Fixing the spec heals it (with requests a node of two cores can hold).
    models.patch_spec("readmission-risk", {"resources": {"model": {"requests": {"cpu": "500m"}}}})
    models.serving("readmission:v1")
