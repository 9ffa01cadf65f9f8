"""Rendering charts/equiguard with the helm binary the control-plane build provides.

helm is built by cluster/build.sh (`make binaries`) into
$EQUIGUARD_CACHE/bin/helm-<version>/; $HELM or a helm on PATH are used instead
when set. Without any, the chart tests are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from helpers.kube import Kubectl
from helpers.unavailable import unavailable

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "equiguard"
ALL_ON_VALUES = CHART / "ci" / "all-on-values.yaml"
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "cluster" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
# A helm built with `go install` has no default cluster version (it says
# v1.20); pass the local control plane's so kubeVersion checks are meaningful.
KUBE_VERSION = VERSIONS["KUBERNETES_VERSION"]
MONITORING_API = "monitoring.coreos.com/v1"


def helm_or_skip() -> str:
    cache = Path(os.environ.get("EQUIGUARD_CACHE", Path.home() / ".cache" / "equiguard"))
    candidates = [
        os.environ.get("HELM"),
        str(cache / "bin" / f"helm-{VERSIONS['HELM_VERSION']}" / "helm"),
        shutil.which("helm"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    unavailable("no helm binary: run `make binaries` (or set HELM)")


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60, check=False)


def remove_release(
    helm: str, kubectl: Kubectl, name: str, operator_namespace: str, models_namespace: str
) -> None:
    """The release first (it owns cluster-wide objects too), then both namespaces
    whatever state the release is in: a model pod left running would hold the
    node's CPU for every test after this one."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        run_helm(helm, "uninstall", name, "--namespace", operator_namespace, "--timeout", "50s",
                 "--kubeconfig", kubectl.kubeconfig)  # fmt: skip
    kubectl.delete_namespaces(operator_namespace, models_namespace)


def render(
    helm: str, *args: str, release: str = "eg", namespace: str = "equiguard"
) -> list[dict[str, Any]]:
    """The objects `helm template` renders (templates only, not crds/), parsed."""
    result = run_helm(
        helm, "template", release, str(CHART), "--namespace", namespace,
        "--kube-version", KUBE_VERSION, *args,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]
