"""The pure readings the reconciliation makes of Deployments and Jobs."""

from __future__ import annotations

from typing import Any

import pytest
from equiguard.operator.reconcile import deployment_readiness, job_state


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
