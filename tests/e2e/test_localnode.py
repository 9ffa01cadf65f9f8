"""The local node runtime (cluster/localnode.py) on the real control plane.

Each test creates workloads in a fresh namespace, pinned to the local node,
and checks what users of the harness rely on: pods run as local processes on
pod IPs of their own, Jobs finish, exit codes are reported, probes gate
readiness and restart containers, and deleting a pod ends its processes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.kube import Kubectl
from kubernetes import client

pytestmark = pytest.mark.cluster

Body = dict[str, Any]
NODE_SELECTOR = {"equiguard.io/local-node": "true"}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Polls `probe` until it returns something truthy; fails naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


class Cluster:
    """Reads and writes the objects of one test namespace, as plain dicts."""

    def __init__(self, api: client.ApiClient, kubectl: Kubectl, namespace: str) -> None:
        self.api, self.kubectl, self.namespace = api, kubectl, namespace
        self.core = client.CoreV1Api(api)

    def apply(self, *manifests: Body) -> None:
        items = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(items))

    def get(self, kind: str, name: str) -> Body | None:
        done = self.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def pods(self, selector: str = "") -> list[Body]:
        listing = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        pods: list[Body] = self.api.sanitize_for_serialization(listing)["items"]  # type: ignore[no-untyped-call]
        return pods

    def pod(self, name: str) -> Body | None:
        try:
            pod: Body = self.api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
                self.core.read_namespaced_pod(name, self.namespace)
            )
        except client.exceptions.ApiException as error:
            if error.status == 404:
                return None
            raise
        return pod

    def run_pod(self, name: str, containers: list[Body], **spec: Any) -> None:
        """Creates a bare pod once the namespace's default ServiceAccount exists."""
        wait_for(
            "the default ServiceAccount",
            lambda: self.get("serviceaccount", "default"),
        )
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"test": name}},
                "spec": {"nodeSelector": NODE_SELECTOR, "containers": containers, **spec},
            }
        )


@pytest.fixture
def cluster(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Cluster:
    node_name = os.environ.get("EQUIGUARD_NODE_NAME", "equiguard-local")
    node = Cluster(api_client, kubectl, namespace).get("node", node_name)
    assert node is not None, f"the local node {node_name} is not registered: is localnode.py up?"
    return Cluster(api_client, kubectl, namespace)


def status_of(pod: Body, container: str) -> Body:
    statuses: list[Body] = pod["status"].get("containerStatuses", [])
    return next(s for s in statuses if s["name"] == container)


def condition(obj: Body, kind: str) -> str | None:
    found = [c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind]
    return found[0]["status"] if found else None


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:  # not listening (yet, or any more)
        return 0, ""


def http_post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=2).close()


def pid_of(pod: Body, container: str) -> int:
    """The PID of a container's first process (containerID is localnode://<pid>)."""
    return int(status_of(pod, container)["containerID"].removeprefix("localnode://"))


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def process_group(pgid: int) -> set[int]:
    """Live processes in a process group, read from /proc (the pods run on this machine)."""
    members = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.add(int(proc.name))
    return members


def job(name: str, script: str, **pod_spec: Any) -> Body:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": NODE_SELECTOR,
                    "containers": [
                        {"name": "main", "image": "equiguard", "command": ["python", "-c", script]}
                    ],
                    **pod_spec,
                }
            },
        },
    }


def test_deployment_pods_each_serve_http_on_their_own_pod_ip(cluster: Cluster) -> None:
    # Both replicas listen on port 8080, which works only if each has its own IP; the
    # page comes from a ConfigMap volume whose mountPath is passed on the command line.
    labels = {"app": "web"}
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "site"},
            "data": {"index.html": "served by the local node\n"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "nodeSelector": NODE_SELECTOR,
                        "volumes": [{"name": "site", "configMap": {"name": "site"}}],
                        "containers": [
                            {
                                "name": "web",
                                "image": "equiguard",
                                "command": ["python", "-m", "http.server", "8080"],
                                "args": ["--bind", "$(MY_IP)", "--directory", "/srv/site"],
                                "env": [
                                    {
                                        "name": "MY_IP",
                                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                    }
                                ],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": "http"},
                                    "periodSeconds": 1,
                                },
                                "volumeMounts": [{"name": "site", "mountPath": "/srv/site"}],
                            }
                        ],
                    },
                },
            },
        },
    )
    wait_for(
        "2 available replicas",
        lambda: (
            (cluster.get("deployment", "web") or {}).get("status", {}).get("availableReplicas") == 2
        ),
    )
    pods = cluster.pods("app=web")
    ips = {pod["status"]["podIP"] for pod in pods}
    assert len(ips) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["hostIP"] == "127.0.0.1"
        assert pod["status"]["podIP"].startswith("127.") and pod["status"]["podIP"] != "127.0.0.1"
        assert http_get(f"http://{pod['status']['podIP']}:8080/") == (
            200,
            "served by the local node\n",
        )


def finished_job(job: dict[str, Any]) -> bool:
    """Complete or Failed: the Job controller first sets SuccessCriteriaMet
    (before it has counted the pod), then Complete with the count."""
    conditions = job.get("status", {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def test_job_pod_completes_and_the_job_reports_success(cluster: Cluster) -> None:
    # The script checks what the runtime hands a process: a Secret in env and a
    # writable emptyDir at its mountPath.
    script = (
        "import os, pathlib\n"
        "out = pathlib.Path('/scratch/out.txt')\n"
        "out.write_text(os.environ['GREETING'])\n"
        "assert out.read_text() == 'hello'\n"
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "greeting"},
            "stringData": {"text": "hello"},
        }
    )
    manifest = job("works", script, volumes=[{"name": "scratch", "emptyDir": {}}])
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "greeting", "key": "text"}}}
    ]
    container["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    cluster.apply(manifest)
    finished = wait_for(
        "the Job to finish",
        lambda: (j := cluster.get("job", "works")) and finished_job(j) and j,
    )
    assert finished["status"].get("succeeded") == 1, finished["status"]
    assert condition(finished, "Complete") == "True"
    [pod] = cluster.pods("job-name=works")
    assert pod["status"]["phase"] == "Succeeded"
    terminated = status_of(pod, "main")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")


def test_a_failing_container_is_reported_with_its_exit_code_and_its_logs(cluster: Cluster) -> None:
    cluster.apply(job("fails", "import sys; sys.exit('cannot go on: no model file')"))
    finished = wait_for(
        "the Job to fail",
        lambda: (j := cluster.get("job", "fails")) and condition(j, "Failed") == "True" and j,
    )
    assert finished["status"].get("failed") == 1
    [pod] = cluster.pods("job-name=fails")
    assert pod["status"]["phase"] == "Failed"
    terminated = status_of(pod, "main")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (1, "Error")
    logs = cluster.kubectl("logs", "-n", cluster.namespace, pod["metadata"]["name"]).stdout
    assert logs == "cannot go on: no model file\n"


# The first process ignores SIGTERM and starts a child that ignores it too, so
# only the SIGKILL after the grace period ends them.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)'])\n"
    "time.sleep(3600)\n"
)


def test_deleting_a_pod_ends_all_its_processes(cluster: Cluster) -> None:
    container = {"name": "main", "image": "equiguard", "command": ["python", "-c", STUBBORN]}
    cluster.run_pod("stubborn", [container], terminationGracePeriodSeconds=2)
    pod = wait_for(
        "the pod to run",
        lambda: (p := cluster.pod("stubborn")) and p["status"].get("phase") == "Running" and p,
    )
    leader = pid_of(pod, "main")
    processes = wait_for("the child process", lambda: len(g := process_group(leader)) >= 2 and g)

    cluster.core.delete_namespaced_pod("stubborn", cluster.namespace)
    wait_for("the pod to be deleted", lambda: cluster.pod("stubborn") is None, timeout=30)
    assert not [pid for pid in processes if alive(pid)]


# Readiness answers 503 until POST /ready, liveness answers 500 after POST /break.
PROBED_SERVER = """
import http.server, os
state = {"ready": False, "alive": True}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = state["ready"] if self.path == "/ready" else state["alive"]
        self.send_response(200 if ok else (503 if self.path == "/ready" else 500))
        self.end_headers()
    def do_POST(self):
        state["ready" if self.path == "/ready" else "alive"] = self.path == "/ready"
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


def probed_container(**probes: Body) -> Body:
    return {
        "name": "server",
        "image": "equiguard",
        "command": ["python", "-c", PROBED_SERVER],
        "ports": [{"name": "http", "containerPort": 8080}],
        **probes,
    }


def test_readiness_probe_gates_pod_readiness(cluster: Cluster) -> None:
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1}
    cluster.run_pod("gated", [probed_container(readinessProbe=probe)])
    pod = wait_for(
        "the server to answer",
        lambda: (
            (p := cluster.pod("gated"))
            and p["status"].get("podIP")
            and http_get(f"http://{p['status']['podIP']}:8080/ready")[0] == 503
            and p
        ),
    )
    time.sleep(3)  # three probe periods of failures
    pod = cluster.pod("gated") or {}
    assert condition(pod, "Ready") == "False"
    assert status_of(pod, "server")["ready"] is False

    http_post(f"http://{pod['status']['podIP']}:8080/ready")
    wait_for(
        "the pod to become Ready", lambda: condition(cluster.pod("gated") or {}, "Ready") == "True"
    )


def test_liveness_probe_failure_restarts_the_container(cluster: Cluster) -> None:
    probe = {
        "httpGet": {"path": "/healthz", "port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    cluster.run_pod("lively", [probed_container(livenessProbe=probe)])
    pod = wait_for(
        "the server to answer",
        lambda: (
            (p := cluster.pod("lively"))
            and p["status"].get("podIP")
            and http_get(f"http://{p['status']['podIP']}:8080/healthz")[0] == 200
            and p
        ),
    )
    first = pid_of(pod, "server")
    http_post(f"http://{pod['status']['podIP']}:8080/break")
    restarted = wait_for(
        "the container to restart",
        lambda: (
            (p := cluster.pod("lively"))
            and status_of(p, "server")["restartCount"] == 1
            and "running" in status_of(p, "server")["state"]
            and p
        ),
        timeout=30,
    )
    assert pid_of(restarted, "server") != first
    assert not alive(first)
    wait_for(
        "the new process to answer",
        lambda: http_get(f"http://{restarted['status']['podIP']}:8080/healthz")[0] == 200,
    )


def test_a_pod_reaches_the_api_server_as_its_service_account(cluster: Cluster) -> None:
    # kubectl and the Python client read KUBECONFIG, which the runtime points at
    # the pod's projected service-account token.
    script = (
        "import json, os, subprocess\n"
        "me = subprocess.run(['kubectl', 'auth', 'whoami', '-o', 'json'],\n"
        "                    check=True, capture_output=True, text=True).stdout\n"
        "user = json.loads(me)['status']['userInfo']['username']\n"
        "assert user == 'system:serviceaccount:' + os.environ['NS'] + ':default', user\n"
    )
    manifest = job("whoami", script)
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ]
    cluster.apply(manifest)
    finished = wait_for(
        "the Job to finish",
        lambda: (j := cluster.get("job", "whoami")) and finished_job(j) and j,
    )
    assert condition(finished, "Complete") == "True", finished["status"]
