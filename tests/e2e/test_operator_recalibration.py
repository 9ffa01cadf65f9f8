"""The Recalibrate action creates exactly one Job, even across an operator killed mid-way."""

from __future__ import annotations

import time

import pytest
from equiguard.operator.names import recalibration_job_name
from helpers.kube import Kubectl
from kubernetes import client
from test_operator_harness import (
    INTERVAL,
    Models,
    OperatorProcess,
    cohort,
    manifest,
    traffic,
    wait_for,
)

pytest_plugins = ["test_operator_harness"]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

V2 = "readmission:v2"


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


def test_recalibrate_creates_exactly_one_job_when_the_operator_is_killed_right_after(
    operator: OperatorProcess,
    models: Models,
) -> None:
    models.apply(manifest(V2, action="Recalibrate"))
    traffic(models.serving(V2), cohort(2500, seed=12), "v2-")

    # Kill the operator the moment its Job appears, before it can finish the
    # bookkeeping of that evaluation (status, record, Event) in the usual way.
    jobs: list[str] = wait_for(models.jobs, 60, "the recalibration Job", every=0.05)
    operator.kill()
    interrupted = not models.status().get("actions")
    print(f"killed before the status recorded the action: {interrupted}")
    expected = recalibration_job_name("readmission-risk", V2, "tpr-gap-race")
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
    assert [(a["action"], a["slo"]) for a in status["actions"]] == [("Recalibrate", "tpr-gap-race")]
    assert status["lastAction"] == f"Recalibrate {V2} ({expected})"
    assert status["servingRevision"] == V2  # recalibration never swaps the revision itself
    assert "RecalibrationJobCreated" in models.event_reasons()
