"""The chart on the real node: the images we ship, in containers, under the
restricted profile.

Installs charts/equiguard with its default images (imported into the node's
containerd by `make cluster-up`), applies the example ClinicalModel and checks
what a platform team would: it becomes Ready, its pods' containers are the
node's (crictl lists them), they run as UID 10001 and cannot write to their
root filesystem.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from helpers.chart import CHART, REPO, helm_or_skip, remove_release, run_helm
from helpers.kube import Kubectl
from helpers.node import crictl
from kubernetes import client

pytestmark = pytest.mark.cluster

EXAMPLE = REPO / "examples" / "readmission" / "clinicalmodel.yaml"
MODEL = "readmission-risk"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
T = TypeVar("T")


def wait_for(what: str, seconds: float, probe: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(2)


@pytest.fixture(scope="module")
def release(api_client: client.ApiClient, kubeconfig: str) -> Iterator[tuple[Kubectl, str]]:
    nodes = client.CoreV1Api(api_client).list_node().items
    runtimes = [n.status.node_info.container_runtime_version for n in nodes if n.status.node_info]
    assert any(r.startswith("containerd://") for r in runtimes), f"no containerd node: {runtimes}"
    helm = helm_or_skip()
    kubectl = Kubectl(kubeconfig)
    suffix = uuid.uuid4().hex[:8]
    name, operator_ns, models_ns = f"rn{suffix}", f"rn-op-{suffix}", f"rn-models-{suffix}"
    for namespace in (operator_ns, models_ns):
        kubectl.create_namespace(namespace)
        kubectl("label", "namespace", namespace, RESTRICTED)
    try:
        result = run_helm(
            helm, "install", name, str(CHART), "--namespace", operator_ns,
            "--kubeconfig", kubeconfig,
            "--set", f"operator.watchNamespaces={{{models_ns}}}",
            "--set", f"operator.peeringName=rn-{suffix}",
            "--wait", "--timeout", "180s",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        yield kubectl, models_ns
    finally:
        remove_release(helm, kubectl, name, operator_ns, models_ns)


def ready_model(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    model: dict[str, Any] = json.loads(
        kubectl("get", "clinicalmodel", MODEL, "-n", namespace, "-o", "json").stdout
    )
    for condition in model.get("status", {}).get("conditions") or []:
        if condition["type"] == "Ready" and condition["status"] == "True":
            return model
    return None


def test_the_example_model_is_ready_in_containers_that_cannot_write_their_root(
    release: tuple[Kubectl, str],
) -> None:
    kubectl, namespace = release
    kubectl("create", "secret", "generic", "readmission-outcomes-token", "-n", namespace,
            f"--from-literal=token={uuid.uuid4().hex}")  # fmt: skip
    kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
    wait_for("the ClinicalModel to be Ready", 300, lambda: ready_model(kubectl, namespace))
    selector = f"equiguard.io/model={MODEL}"
    found = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    pods = json.loads(found.stdout)["items"]
    assert pods
    # The node's runtime runs them: crictl lists every container of the model's pods.
    listed = crictl("ps", "--namespace", namespace)["containers"]
    for pod in pods:
        names = {c["name"] for c in pod["spec"]["containers"]}
        running = {c["metadata"]["name"] for c in listed
                   if c["labels"]["io.kubernetes.pod.name"] == pod["metadata"]["name"]}  # fmt: skip
        assert names <= running, (names, running)
        for container in sorted(names):
            probe = kubectl(
                "exec", "-n", namespace, pod["metadata"]["name"], "-c", container, "--",
                "sh", "-c", "id -u; touch /written-by-a-test 2>&1; echo exit=$?",
                check=False,
            )  # fmt: skip
            lines = probe.stdout.strip().splitlines()
            assert lines[0] == "10001", (container, probe.stdout, probe.stderr)
            assert "Read-only file system" in probe.stdout, (container, probe.stdout)
            assert lines[-1] != "exit=0"
