"""The pure readings the reconciliation makes of Deployments and Jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.kube import Transient
from equiguard.operator.manifests import Images, Revision
from equiguard.operator.reconcile import (
    AppliedChildren,
    Settings,
    apply_children,
    deployment_readiness,
    job_state,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml"


def _deployment(revision: str, replicas: int = 2, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"annotations": {"equiguard.io/revision": revision}}},
        },
        "status": {"observedGeneration": 3, **status},
    }


def test_a_deployment_is_ready_when_every_replica_of_the_revision_is_available() -> None:
    ready = _deployment("readmission:v1", replicas=2)
    ready["status"].update(replicas=2, updatedReplicas=2, availableReplicas=2)
    assert deployment_readiness(ready, "readmission:v1").ready


@pytest.mark.parametrize(
    ("case", "revision", "status"),
    [
        ("old pods still running", "readmission:v1",
         {"replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        ("new pods not available yet", "readmission:v1",
         {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        ("another revision in the template", "readmission:v2",
         {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
    ],
)  # fmt: skip
def test_a_deployment_is_not_ready_while_it_rolls_out(
    case: str, revision: str, status: dict[str, int]
) -> None:
    deployment = _deployment(revision)
    deployment["status"].update(status)
    assert not deployment_readiness(deployment, "readmission:v1").ready, case


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([], ("Running", "")),
        ([{"type": "Complete", "status": "True"}], ("Complete", "")),
        ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
           "message": "Job has reached the specified backoff limit"}],
         ("Failed", "Job has reached the specified backoff limit")),
        ([{"type": "Failed", "status": "False"}], ("Running", "")),
    ],
)  # fmt: skip
def test_a_job_is_running_until_it_completes_or_fails(
    conditions: list[dict[str, str]], state: tuple[str, str]
) -> None:
    assert job_state({"status": {"conditions": conditions}}) == state


class FlakyKube:
    """An API server that refuses one apply of `flaky_kind` for now, and keeps the rest."""

    def __init__(self, flaky_kind: str) -> None:
        self.flaky_kind = flaky_kind
        self.objects: dict[str, dict[str, Any]] = {}
        self.applies: list[str] = []

    def has_api(self, api_version: str, kind: str) -> bool:
        return False

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(kind)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self.applies.append(body["kind"])
        if body["kind"] == self.flaky_kind:
            self.flaky_kind = ""
            raise Transient("the API server is restarting")
        self.objects[body["kind"]] = body
        return body


def _apply(
    kube: FlakyKube, cache: AppliedChildren, force: bool = False, now: datetime = T0
) -> None:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=4)
    serving = Revision("readmission:v1", "ghcr.io/equiguard/model-runtime:0.1.0")
    images = Images(sidecar="sidecar:0.1.0", job="sidecar:0.1.0", model="model-runtime:0.1.0")
    apply_children(
        kube,
        body,
        read_model(body),
        serving,
        Settings(images),
        now,
        cache,
        force,  # type: ignore[arg-type]
    )


def test_unchanged_children_are_not_sent_again() -> None:
    kube, cache = FlakyKube(""), AppliedChildren()
    _apply(kube, cache)
    _apply(kube, cache)
    assert kube.applies == ["ConfigMap", "Service", "Deployment"]


def test_unchanged_children_are_applied_again_once_the_period_has_passed() -> None:
    kube, cache = FlakyKube(""), AppliedChildren(period=600.0)
    _apply(kube, cache)
    _apply(kube, cache, now=T0 + timedelta(seconds=599))
    _apply(kube, cache, now=T0 + timedelta(seconds=600))
    assert kube.applies == ["ConfigMap", "Service", "Deployment"] * 2


def test_a_drift_repair_that_fails_midway_is_completed_by_the_next_evaluation() -> None:
    kube, cache = FlakyKube(""), AppliedChildren()
    _apply(kube, cache)
    del kube.objects["Service"]  # deleted by hand
    kube.flaky_kind = "Service"
    with pytest.raises(Transient):
        _apply(kube, cache, force=True)  # the repair on the Service's DELETED event
    _apply(kube, cache)  # the next evaluation, children unchanged
    assert "Service" in kube.objects
