"""The demo's reads and writes on the cluster, through kubectl and helm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).with_name("kubectl"))
VERSIONS = dict(
    line.split("=", 1)
    for line in (REPO / "cluster" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)


def cache_dir() -> Path:
    return Path(os.environ.get("EQUIGUARD_CACHE") or Path.home() / ".cache" / "equiguard")


def helm_binary() -> str:
    return str(cache_dir() / "bin" / f"helm-{VERSIONS['HELM_VERSION']}" / "helm")


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    namespace: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise CommandFailed(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def helm(self, *args: str) -> str:
        result = subprocess.run(
            [helm_binary(), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise CommandFailed(f"helm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def model(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get("clinicalmodel", name, "-n", self.namespace)
        return found

    def ready_pod_ips(self, model: str, revision_label: str | None = None) -> list[str]:
        pods = self.get("pods", "-n", self.namespace, "-l", f"equiguard.io/model={model}")["items"]
        ips = []
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            statuses = pod.get("status", {}).get("containerStatuses") or []
            if statuses and all(s.get("ready") for s in statuses) and pod["status"].get("podIP"):
                labels = pod["metadata"].get("labels", {})
                if revision_label is None or labels.get("equiguard.io/revision") == revision_label:
                    ips.append(pod["status"]["podIP"])
        return ips

    def events(self, model: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "events", "-n", self.namespace,
            "--field-selector", f"involvedObject.kind=ClinicalModel,involvedObject.name={model}",
        )["items"]  # fmt: skip
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
