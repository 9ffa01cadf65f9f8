"""What the operator's end-to-end tests share: a real `equiguard operator` process per
test namespace, ClinicalModels, and real traffic through the sidecars on the cluster's node.

Imported by the test_operator_* modules (it holds fixtures and helpers, no tests).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import pytest
import yaml
from equiguard.cohort import (
    DEFAULT_RACE_MIX,
    Cohort,
    generate_cohort,
    outcome_messages,
    prediction_requests,
)
from equiguard.engine.monitoring import DEFAULT_PLAN, boundary_z, comparison_alpha
from equiguard.engine.spec import parse_duration
from equiguard.kube import Kube
from helpers.kube import Kubectl
from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
EQUIGUARD = str(Path(sys.executable).with_name("equiguard"))
BENTOML_HOME = (
    Path(os.environ.get("EQUIGUARD_CACHE") or Path.home() / ".cache" / "equiguard") / "bentoml"
)
TOKEN = "e2e-outcome-token"
GROUP, VERSION = "equiguard.io", "v1alpha1"
TICK = 1.0
INTERVAL = 5  # seconds between evaluations in the models of these tests

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def bentos() -> Path:
    """The example bentos readmission:v1 and v2, built once into the cache if missing."""
    env = {**os.environ, "BENTOML_HOME": str(BENTOML_HOME), "BENTOML_DO_NOT_TRACK": "True"}
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "list", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tags = (
        {item["tag"] for item in json.loads(listed.stdout or "[]")}
        if listed.returncode == 0
        else set()
    )
    if not {"readmission:v1", "readmission:v2"} <= tags:
        subprocess.run(
            [
                sys.executable,
                str(REPO / "examples/readmission/build.py"),
                "--home",
                str(BENTOML_HOME),
            ],
            check=True,
            timeout=600,
        )
    return BENTOML_HOME


@pytest.fixture(scope="session")
def operator_crds(kubeconfig: str) -> None:
    kubectl = Kubectl(kubeconfig)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/clinicalmodels.equiguard.io",
        "crd/equitydecisions.equiguard.io",
        "crd/kopfpeerings.kopf.dev",
    )


class OperatorProcess:
    """`equiguard operator` watching one namespace, as a child process of the test."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = self.liveness_port = 0
        # NAME=VALUE for every model container and recalibration Job, besides BENTOML_HOME.
        self.model_env: list[str] = []

    def start(self) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        command = [
            EQUIGUARD,
            "operator",
            "--namespace",
            self.namespace,
            "--tick",
            str(TICK),
            "--peering-lifetime",
            "10",
            "--stats-timeout",
            "5",
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(self.metrics_port),
            "--liveness",
            f"http://127.0.0.1:{self.liveness_port}/healthz",
            *(argument for pair in self.model_env for argument in ("--model-env", pair)),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "KUBECONFIG": self.kubeconfig},
            )

    def kill(self) -> None:
        """SIGKILL: no chance to clean up or to finish what it was doing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def get(self, port: int, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def operator(
    kubeconfig: str,
    namespace: str,
    operator_crds: None,
    bentos: Path,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """An operator for the test's namespace, with its peering object and the outcome token."""
    kubectl = Kubectl(kubeconfig)
    kubectl(
        "create",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "kopf.dev/v1",
                "kind": "KopfPeering",
                "metadata": {"name": "equiguard"},
            }
        ),
    )
    kubectl(
        "create",
        "secret",
        "generic",
        "-n",
        namespace,
        "readmission-outcomes-token",
        f"--from-literal=token={TOKEN}",
    )
    process = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    time.sleep(2)
    assert process.process is not None and process.process.poll() is None, process.tail()
    yield process
    # Models go first, while the operator runs to release its finalizer on them;
    # otherwise the namespace would wait for them forever.
    if process.process is not None and process.process.poll() is None:
        delete_models(kubectl, namespace)
    process.stop()
    print(f"--- operator log (last lines)\n{process.tail()}")


def delete_models(kubectl: Kubectl, namespace: str, timeout: float = 240) -> None:
    """Deletes the namespace's ClinicalModels and waits (up to `timeout`) until they are
    gone: on a loaded machine that may take longer than one kubectl call waits."""
    kubectl("delete", "clm", "--all", "-n", namespace, "--wait=false", check=False)
    deadline = time.monotonic() + timeout
    while (
        time.monotonic() < deadline
        and kubectl("get", "clm", "-n", namespace, "-o", "name", check=False).stdout.strip()
    ):
        time.sleep(1)


def manifest(
    bento: str = "readmission:v1",
    action: str = "Rollback",
    enforcement: str = "Enforce",
    **spec: Any,
) -> dict[str, Any]:
    """A ClinicalModel watching the TPR gap between Black and White patients.

    Other races fall into `unknown` (reported, never compared), so the SLO
    compares the two groups where revision v2 plants its gap (0.35 vs 0.72).
    """
    body = copy.deepcopy(EXAMPLE)
    body["spec"]["model"]["bento"] = bento
    body["spec"]["subgroups"] = {
        "attributes": [
            {"name": "race", "source": {"context": "race"}, "values": ["White", "Black"]},
        ]
    }
    body["spec"]["slos"] = [
        {
            "name": "tpr-gap-race",
            "metric": "tpr",
            "attribute": "race",
            "comparison": "maxGap",
            "threshold": "0.10",
            "window": "1h",
            "minSamples": 50,
            "confidence": "0.95",
            "consecutiveBreaches": 2,
            "action": action,
        }
    ]
    body["spec"]["evaluation"] = {
        "interval": f"{INTERVAL}s",
        "qualificationPeriod": "10s",
        "cooldown": "1h",
        "maxActionsPerDay": 3,
    }
    body["spec"]["enforcement"] = enforcement
    if action == "Recalibrate":
        body["spec"]["changeControl"] = {"methods": ["platt"]}
    body["spec"].update(spec)
    manifest_body: dict[str, Any] = body
    return manifest_body


class Models:
    """ClinicalModels, their pods and their records in one namespace, read as plain JSON."""

    def __init__(self, api: client.ApiClient, kubectl: Kubectl, namespace: str) -> None:
        self.kube = Kube(api)
        self.kubectl, self.namespace = kubectl, namespace

    def apply(self, body: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(body))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.kubectl("patch", "clm", name, "-n", self.namespace, "--type=merge",
                     "-p", json.dumps({"spec": spec}))  # fmt: skip

    def objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        return self.kube.list(api_version, kind, self.namespace, {})

    def read(self, api_version: str, kind: str, name: str) -> dict[str, Any]:
        found = self.kube.get(api_version, kind, self.namespace, name)
        assert found is not None, f"no {kind} {self.namespace}/{name}"
        return found

    def get(self, name: str = "readmission-risk") -> dict[str, Any]:
        return self.read(f"{GROUP}/{VERSION}", "ClinicalModel", name)

    def status(self, name: str = "readmission-risk") -> dict[str, Any]:
        status: dict[str, Any] = self.get(name).get("status") or {}
        return status

    def condition(self, type_: str, name: str = "readmission-risk") -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def records(self) -> list[dict[str, Any]]:
        items = self.objects(f"{GROUP}/{VERSION}", "EquityDecision")
        return sorted(items, key=lambda r: str(r["spec"]["time"]))

    def event_reasons(self) -> set[str]:
        return {str(event.get("reason")) for event in self.objects("v1", "Event")}

    def jobs(self) -> list[str]:
        return [str(job["metadata"]["name"]) for job in self.objects("batch/v1", "Job")]

    def pods(self) -> list[dict[str, Any]]:
        return self.objects("v1", "Pod")

    def ready_pod_ips(self, revision: str) -> list[str]:
        ips = []
        for pod in self.pods():
            meta, status = pod["metadata"], pod.get("status") or {}
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in status.get("conditions") or [])  # fmt: skip
            if (
                (meta.get("annotations") or {}).get("equiguard.io/revision") == revision
                and ready
                and not meta.get("deletionTimestamp")
                and status.get("podIP")
            ):
                ips.append(str(status["podIP"]))
        return ips

    def serving(self, revision: str, timeout: float = 240) -> list[str]:
        """Waits until the model serves `revision` from ready pods only; their IPs."""

        def settled() -> list[str] | None:
            status = self.status()
            deployment_ready = self.condition("Ready").get("status") == "True"
            ips = self.ready_pod_ips(revision)
            others = [
                pod for pod in self.pods()
                if (pod["metadata"].get("annotations") or {}).get("equiguard.io/revision")
                != revision
                and (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
                == "model-server"
            ]  # fmt: skip
            if (
                status.get("servingRevision") == revision
                and deployment_ready
                and ips
                and not others
            ):
                return ips
            return None

        return wait_for(settled, timeout, f"serving {revision} from ready pods")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    every: float = 0.5,
    explain: Callable[[], str] | None = None,
) -> T:
    """Polls `probe` until it gives a value; on timeout, fails naming `what` (and
    what `explain` says of the state then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"; {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(every)


def traffic(ips: list[str], cohort: Cohort, prefix: str) -> None:
    """Every row of the cohort as a prediction through a sidecar, then its outcome."""
    predictions(ips, cohort, prefix)
    outcomes(ips, cohort, prefix)


def predictions(ips: list[str], cohort: Cohort, prefix: str) -> None:
    """Every row of the cohort as a prediction through a sidecar, with no outcome yet."""
    requests = prediction_requests(cohort, id_prefix=prefix)

    async def send() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            gate = asyncio.Semaphore(16)

            async def predict(i: int) -> None:
                request = requests[i]
                async with (
                    gate,
                    session.post(
                        f"http://{ips[i % len(ips)]}:8080/predict",
                        json=request.body,
                        headers=request.headers,
                    ) as response,
                ):
                    assert response.status == 200, await response.text()

            await asyncio.gather(*(predict(i) for i in range(len(requests))))

    asyncio.run(send())


def outcomes(ips: list[str], cohort: Cohort, prefix: str) -> None:
    """The outcome of every row predicted by `predictions` with the same prefix."""
    messages = outcome_messages(cohort, id_prefix=prefix)

    async def send() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            # Outcomes may reach any replica: each sidecar joins those it served.
            for ip in ips:
                for start in range(0, len(messages), 1000):
                    async with session.post(
                        f"http://{ip}:8080/v1/outcomes",
                        json={"outcomes": messages[start : start + 1000]},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as response:
                        assert response.status == 200, await response.text()

    asyncio.run(send())


def records(ip: str, cohort: Cohort, scores: np.ndarray, prefix: str) -> None:
    """Every row of the cohort as a scored record with its outcome, in bulk through
    /v1/records of one sidecar: what a batch scorer sends. `scores` are the real
    model's scores of the rows (see `helpers.recalibration.model_scores`)."""
    rows = [
        {
            "request_id": f"{prefix}{i:08d}",
            "score": float(scores[i]),
            "label": int(cohort["label"][i]),
            "race": str(cohort["race"][i]),
        }
        for i in range(len(cohort))
    ]

    async def send() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            for start in range(0, len(rows), 5000):
                async with session.post(
                    f"http://{ip}:8080/v1/records",
                    json={"records": rows[start : start + 5000]},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                    assert not answer.get("invalid"), answer

    asyncio.run(send())


def cohort(n: int, seed: int, race_mix: Mapping[str, float] = DEFAULT_RACE_MIX) -> Cohort:
    return generate_cohort(n, seed, race_mix=race_mix)


def positives_to_demonstrate(slo: Mapping[str, Any], tpr: float, gap: float) -> int:
    """Positives per compared group with which the monitoring interval of a TPR gap
    of about `gap` (rates near `tpr`) lies within the SLO's threshold: the engine's
    sequential boundary at that many outcomes, on a two-group comparison."""
    window = parse_duration(str(slo["window"]))
    alpha = comparison_alpha(1.0 - float(slo["confidence"]), 1, window, DEFAULT_PLAN)
    n = 50
    while boundary_z(alpha, n, DEFAULT_PLAN) * math.sqrt(2 * tpr * (1 - tpr) / n) + gap > float(
        slo["threshold"]
    ):
        n = math.ceil(n * 1.02)
    return n


def rows_for_positives(positives: int, race_mix: Mapping[str, float], seed: int) -> int:
    """Cohort rows that give every compared group (White, Black) about `positives`
    positive outcomes, with a tenth to spare, measured on a pilot cohort of that mix."""
    pilot = generate_cohort(20_000, seed, race_mix=race_mix)
    share = min(
        float(np.mean((pilot["race"] == group) & (pilot["label"] == 1)))
        for group in ("White", "Black")
    )
    return math.ceil(1.1 * positives / share)
