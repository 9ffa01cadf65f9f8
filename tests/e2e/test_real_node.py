"""The real node: pods in containers from the images we ship, Services and
cluster DNS inside pods, and the routes that keep pod and Service traffic on
this machine.

The cluster's node is a kubelet with containerd (`make cluster-up`); a
cluster without one fails them.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections.abc import Iterator

import pytest
from helpers.unavailable import unavailable
from kubernetes import client

pytestmark = pytest.mark.cluster

VERSION = "0.1.0"
IMAGES = {
    "operator": f"ghcr.io/equiguard/operator:{VERSION}",
    "sidecar": f"ghcr.io/equiguard/sidecar:{VERSION}",
    "model-runtime": f"ghcr.io/equiguard/model-runtime:{VERSION}",
}
# Inside the node's pod and Service ranges, and assigned to nothing.
UNASSIGNED_POD_IP = "10.244.200.7"
UNASSIGNED_SERVICE_IP = "10.96.250.7"

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# Prints what the container is: its user and what a write to / does.
PROBE = """
import errno, json, os
try:
    open("/written-by-a-test", "w").close()
    write = "written"
except OSError as e:
    write = errno.errorcode[e.errno]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "write_root": write}))
"""

# From inside a pod: cluster DNS, a Service, the API server through the
# `kubernetes` Service, and an unassigned Service address.
CLIENT = (
    f"UNASSIGNED = {UNASSIGNED_SERVICE_IP!r}\n"
    + """
import json, socket, ssl, time, urllib.request
out = {}
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
out["short"] = socket.gethostbyname("web")
out["fqdn"] = socket.gethostbyname(f"web.{ns}.svc.cluster.local")
for attempt in range(30):
    try:
        out["body"] = urllib.request.urlopen("http://web/", timeout=5).read().decode()
        break
    except OSError as e:
        out["body"] = repr(e)
        time.sleep(1)
token = open("/var/run/secrets/kubernetes.io/serviceaccount/token").read()
ctx = ssl.create_default_context(cafile="/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
req = urllib.request.Request("https://kubernetes.default.svc/version",
                             headers={"Authorization": "Bearer " + token})
out["api"] = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"]
start = time.monotonic()
try:
    socket.create_connection((UNASSIGNED, 80), timeout=10).close()
    out["unassigned"] = "connected"
except OSError as e:
    out["unassigned"] = type(e).__name__ + ":" + str(e.errno)
out["unassigned_seconds"] = time.monotonic() - start
print(json.dumps(out))
"""
)


@pytest.fixture(scope="module")
def real_node(api_client: client.ApiClient) -> client.V1Node:
    for node in client.CoreV1Api(api_client).list_node().items:
        info = node.status.node_info
        if info and info.container_runtime_version.startswith("containerd://"):
            return node
    unavailable("the cluster has no kubelet on containerd: make cluster-up starts one")


@pytest.fixture
def restricted_namespace(api_client: client.ApiClient, namespace: str) -> Iterator[str]:
    """The test's namespace, admitting only pods of the restricted profile."""
    client.CoreV1Api(api_client).patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    yield namespace


def pod(
    name: str,
    image: str,
    command: list[str],
    labels: dict[str, str] | None = None,
    restart: str = "Never",
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": restart,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


def wait_for_phase(
    core: client.CoreV1Api, namespace: str, name: str, phases: set[str], seconds: float = 180
) -> client.V1Pod:
    deadline = time.monotonic() + seconds
    while True:
        current = core.read_namespaced_pod(name, namespace)
        if current.status.phase in phases:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} is {current.status.phase}: {current.status}")
        time.sleep(1)


def run_to_completion(
    api_client: client.ApiClient, namespace: str, manifest: dict[str, object]
) -> str:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, manifest)
    name = manifest["metadata"]["name"]  # type: ignore[index]
    done = wait_for_phase(core, namespace, name, {"Succeeded", "Failed"})
    logs = core.read_namespaced_pod_log(name, namespace)
    assert done.status.phase == "Succeeded", logs
    return str(logs)


def test_the_node_is_a_kubelet_136_on_containerd_2(real_node: client.V1Node) -> None:
    info = real_node.status.node_info
    assert info.kubelet_version.startswith("v1.36."), info.kubelet_version
    runtime = info.container_runtime_version
    assert runtime.startswith("containerd://2."), runtime
    ready = [c for c in real_node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert real_node.status.addresses[0].address == "10.244.0.1"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_image_runs_as_10001_on_a_read_only_root(
    api_client: client.ApiClient, real_node: client.V1Node, restricted_namespace: str, image: str
) -> None:
    logs = run_to_completion(
        api_client, restricted_namespace, pod("probe", IMAGES[image], ["python", "-c", PROBE])
    )
    assert json.loads(logs.strip().splitlines()[-1]) == {
        "uid": 10001,
        "gid": 10001,
        "write_root": "EROFS",
    }


def test_services_dns_and_the_api_server_from_inside_a_pod(
    api_client: client.ApiClient, real_node: client.V1Node, restricted_namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    server = pod(
        "web",
        IMAGES["sidecar"],
        ["python", "-m", "http.server", "8000", "--directory", "/opt/equiguard"],
        labels={"app": "web"},
        restart="Always",
    )
    core.create_namespaced_pod(restricted_namespace, server)
    core.create_namespaced_service(
        restricted_namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    )
    wait_for_phase(core, restricted_namespace, "web", {"Running"})
    logs = run_to_completion(
        api_client, restricted_namespace, pod("client", IMAGES["sidecar"], ["python", "-c", CLIENT])
    )
    out = json.loads(logs.strip().splitlines()[-1])
    service_ip = core.read_namespaced_service("web", restricted_namespace).spec.cluster_ip
    assert out["short"] == out["fqdn"] == service_ip
    assert "pyvenv.cfg" in out["body"]  # the listing of /opt/equiguard, served by the other pod
    assert out["api"].startswith("v1.36.")
    # An unassigned Service address: refused on this machine at once.
    assert out["unassigned"] == f"OSError:{errno.EHOSTUNREACH}", out
    assert out["unassigned_seconds"] < 2


@pytest.mark.parametrize("address", [UNASSIGNED_POD_IP, UNASSIGNED_SERVICE_IP])
def test_unassigned_pod_and_service_addresses_fail_on_the_host_at_once(
    api_client: client.ApiClient, real_node: client.V1Node, address: str
) -> None:
    services = client.CoreV1Api(api_client).list_service_for_all_namespaces().items
    assert address not in {s.spec.cluster_ip for s in services}
    start = time.monotonic()
    with pytest.raises(OSError) as failure:
        socket.create_connection((address, 80), timeout=10).close()
    assert time.monotonic() - start < 0.5
    assert failure.value.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH), failure.value
