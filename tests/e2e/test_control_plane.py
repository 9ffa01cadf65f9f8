"""The local control plane is a real one: versioned, validating, with RBAC."""

from __future__ import annotations

from helpers.kube import Kubectl
from kubernetes import client

INVALID_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replicas: -1
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: x}]}
"""


def test_server_reports_the_pinned_kubernetes_version(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    assert version.git_version == "v1.36.3"
    assert (version.major, version.minor) == ("1", "36")


def test_server_side_dry_run_refuses_an_invalid_object_naming_the_fields(
    kubectl: Kubectl, namespace: str
) -> None:
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=INVALID_DEPLOYMENT,
        check=False,
    )
    assert result.returncode != 0
    assert "spec.replicas" in result.stderr
    assert "spec.template.metadata.labels" in result.stderr
    assert kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout == ""


def test_rbac_denies_a_service_account_what_it_was_not_granted(
    kubectl: Kubectl, namespace: str
) -> None:
    who = f"--as=system:serviceaccount:{namespace}:default"
    denied = kubectl("auth", "can-i", "list", "secrets", "-n", namespace, who, check=False)
    assert denied.stdout.strip() == "no"
    kubectl("create", "role", "reader", "--verb=list", "--resource=secrets", "-n", namespace)
    kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        f"--serviceaccount={namespace}:default",
        "-n",
        namespace,
    )
    allowed = kubectl("auth", "can-i", "list", "secrets", "-n", namespace, who, check=False)
    assert allowed.stdout.strip() == "yes"


def test_the_local_node_is_registered_and_ready(api_client: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api_client).list_node().items
    ready = {
        node.metadata.name
        for node in nodes
        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    }
    assert "equiguard-local" in ready
