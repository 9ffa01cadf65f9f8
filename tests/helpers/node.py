"""The cluster's real node as the tests reach it: its runtime's command-line tools.

Paths follow cluster/node.sh: the node's state lies under the cluster folder,
its binaries under the cache, at the versions of cluster/versions.env.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from helpers.chart import REPO

CACHE = Path(os.environ.get("EQUIGUARD_CACHE", Path.home() / ".cache" / "equiguard"))
STATE = Path(os.environ.get("EQUIGUARD_CLUSTER_DIR", CACHE / "cluster"))
NODE = STATE / "node"


def _versions() -> dict[str, str]:
    lines = (REPO / "cluster" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command[:2])}: {result.stderr[-2000:]}"
    return result.stdout


def crictl(*args: str) -> Any:
    """crictl against the node's containerd, its answer read as JSON."""
    binary = CACHE / "bin" / f"cri-tools-{_versions()['CRI_TOOLS_VERSION']}" / "crictl"
    command = [str(binary), "--config", str(NODE / "crictl.yaml"), *args, "-o", "json"]
    return json.loads(_run(command))


def tag_image(source: str, target: str) -> None:
    """Give an image the node already holds a second name, so pods can use it without a pull.

    Nothing is fetched: the node reaches no registry, and a pod whose image is
    present is started with it (pull policy IfNotPresent).
    """
    binary = CACHE / "bin" / f"containerd-{_versions()['CONTAINERD_VERSION']}" / "ctr"
    ctr = [str(binary), "--address", str(NODE / "containerd" / "containerd.sock"), "-n", "k8s.io"]
    if target not in _run([*ctr, "images", "ls", "-q"]).split():
        _run([*ctr, "images", "tag", source, target])
