"""Up, down and up again: `make cluster-down` leaves nothing of the real node.

It stops and restarts the cluster, so it runs only when asked for
(`make test-node-lifecycle` sets EQUIGUARD_TEST_NODE_LIFECYCLE=1), after every
other test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers.unavailable import unavailable
from kubernetes import client, config

pytestmark = [pytest.mark.cluster]


@pytest.fixture(autouse=True)
def lifecycle_asked_for() -> None:
    # It stops and restarts the cluster it runs on, so only `make test`, after
    # every other test (make test-node-lifecycle), asks for it.
    if os.environ.get("EQUIGUARD_TEST_NODE_LIFECYCLE") != "1":
        unavailable("restarts the cluster: run by make test-node-lifecycle")


REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EQUIGUARD_CACHE", Path.home() / ".cache" / "equiguard"))
STATE = Path(os.environ.get("EQUIGUARD_CLUSTER_DIR", CACHE / "cluster"))
BRIDGE = "eqg0"


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def leftovers() -> dict[str, list[str]]:
    """What the node made on this machine and is still there."""
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(STATE / "node") + "/")
    ]
    routes = [line for line in run("ip", "route").splitlines()
              if "10.244." in line or "10.96." in line]  # fmt: skip
    links = [line for line in run("ip", "-o", "link").splitlines() if BRIDGE in line]
    rules = [
        line
        for table in ("filter", "nat", "mangle")
        for line in run("iptables", "-t", table, "-S").splitlines()
        if any(mark in line for mark in ("KUBE-", "CNI-", BRIDGE))
    ]
    processes = []
    pids = STATE / "pids"
    for pidfile in pids.iterdir() if pids.is_dir() else []:
        if Path(f"/proc/{pidfile.read_text().strip()}").exists():
            processes.append(pidfile.name)
    return {"mounts": mounts, "routes": routes, "links": links, "iptables": rules,
            "processes": processes}  # fmt: skip


def test_down_removes_everything_the_node_made_and_up_brings_it_back() -> None:
    assert (STATE / "mode").read_text().strip() == "real"
    up_before = leftovers()
    assert up_before["links"] and up_before["routes"] and up_before["processes"]
    run(str(REPO / "cluster" / "down.sh"))
    assert leftovers() == {"mounts": [], "routes": [], "links": [], "iptables": [],
                           "processes": []}  # fmt: skip
    output = run(str(REPO / "cluster" / "up.sh"))
    assert output.strip().splitlines()[-1] == f"export KUBECONFIG={STATE / 'kubeconfig'}"
    config.load_kube_config(str(STATE / "kubeconfig"))
    nodes = client.CoreV1Api().list_node().items
    ready = {
        n.metadata.name: [c.status for c in n.status.conditions if c.type == "Ready"] for n in nodes
    }
    assert ready.get("equiguard-local") == ["True"], ready
