"""Benchmark: one operator evaluating many ClinicalModels whose pods kwok simulates.

    KUBECONFIG=... python bench/operator_scale.py [--models 200] [--seconds 150]

On the local control plane (`make cluster-up`), kwok manages one tainted fake
node (only the benchmark's pods tolerate it) and gives each pod a loopback
address in 127.2.0.0/16, where this script serves the sidecar's GET /v1/stats
with real engine statistics. So every evaluation does all its real work:
apply the children, list pods, read the token, fetch and sum statistics,
evaluate the SLOs, write records and status.

Reports, for a baseline of one model and then for --models models in the same
run: the evaluation-to-status latency (from an evaluation's clock reading,
`status.lastEvaluationTime`, to the status change arriving on a watch) as p50
and p95, the evaluations per second, and the operator's resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from aiohttp import web
from equiguard.cohort import generate_cohort
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from harness import Result, Spread, record
from kubernetes import client as _client
from kubernetes import config as _config
from kubernetes import watch as _watch

# The client's configuration, watch and typed models are used with plain dicts here.
client: Any = _client
config: Any = _config
watch: Any = _watch
REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("EQUIGUARD_CACHE") or Path.home() / ".cache" / "equiguard")
KWOK = CACHE / "bin" / "kwok-v0.8.0" / "kwok"
STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-delete.yaml",
)
NODE = "equiguard-bench-kwok"
TAINT = {"key": "equiguard.io/bench", "value": "kwok", "effect": "NoSchedule"}
POD_CIDR = "127.2.0.0/16"
TOKEN = "bench-token"
GROUP, VERSION = "equiguard.io", "v1alpha1"
BASELINE_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stages_file(folder: Path) -> Path:
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = Path(modcache) / "sigs.k8s.io" / "kwok@v0.8.0" / "kustomize" / "stage"
    path = folder / "stages.yaml"
    path.write_text("\n---\n".join((root / stage).read_text() for stage in STAGES))
    return path


def model_body(name: str, interval: int) -> dict[str, Any]:
    body = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
    body["metadata"] = {"name": name}
    body["spec"]["evaluation"] = {
        "interval": f"{interval}s",
        "qualificationPeriod": "1h",
        "cooldown": "1h",
        "maxActionsPerDay": 3,
    }
    body["spec"]["outcomes"]["tokenSecret"] = {"name": "bench-token", "key": "token"}
    body["spec"]["placement"] = {
        "nodeSelector": {"kubernetes.io/hostname": NODE},
        "tolerations": [{**TAINT, "operator": "Equal"}],
    }
    return dict(body)


def statistics_json() -> bytes:
    """What one sidecar would report: 4,000 labelled predictions of the example cohort."""
    body = model_body("x", 30)
    spec = parse_model({**body, "metadata": {"name": "x", "namespace": "bench"}})
    layout = CellLayout.from_spec(spec.subgroups)
    cohort = generate_cohort(4000, seed=5)
    columns = {name: cohort[name] for name in ("race", "sex", "payer", "language", "adi_quintile")}
    columns["age_band"] = cohort["age"]
    rows = layout.assign(columns, len(cohort))
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(rows, np.asarray(cohort["reference_score"]), np.asarray(cohort["label"]))
    return json.dumps(stats.to_dict()).encode()


class StatsServer:
    """GET /v1/stats on every simulated pod's address, in a thread of its own."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.loop = asyncio.new_event_loop()
        self.bound: set[str] = set()
        self.runner: web.AppRunner | None = None
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._setup(), self.loop).result()

    async def _stats(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        return web.Response(body=self.payload, content_type="application/json")

    async def _setup(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/stats", self._stats)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()

    def bind(self, ip: str) -> None:
        if ip in self.bound:
            return
        assert self.runner is not None
        site = web.TCPSite(self.runner, ip, 8080)
        asyncio.run_coroutine_threadsafe(site.start(), self.loop).result()
        self.bound.add(ip)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Latencies:
    """Watches the namespace's models; one latency per new lastEvaluationTime."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.samples: list[tuple[float, float]] = []  # (arrival, latency)
        self.seen: dict[str, str] = {}
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        custom = client.CustomObjectsApi()
        while not self.stop.is_set():
            stream = watch.Watch().stream(
                custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                "clinicalmodels",
                timeout_seconds=30,
            )
            for event in stream:
                arrival = time.time()
                body = event["object"]
                stamp = (body.get("status") or {}).get("lastEvaluationTime")
                name = body["metadata"]["name"]
                if stamp and self.seen.get(name) != stamp:
                    self.seen[name] = stamp
                    evaluated = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                    self.samples.append((arrival, arrival - evaluated))
                if self.stop.is_set():
                    return

    def between(self, start: float, end: float) -> list[float]:
        return [latency for arrival, latency in self.samples if start <= arrival < end]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=150.0, help="measured time at scale")
    parser.add_argument("--interval", type=int, default=30, help="each model's evaluation interval")
    args = parser.parse_args()
    if not KWOK.exists() or not os.environ.get("KUBECONFIG"):
        print(
            "needs KUBECONFIG of the local control plane and kwok (make binaries)", file=sys.stderr
        )
        return 2
    config.load_kube_config()
    core, custom = client.CoreV1Api(), client.CustomObjectsApi()
    work = Path(tempfile.mkdtemp(prefix="equiguard-bench-"))
    namespace = f"eqbench-{uuid.uuid4().hex[:8]}"
    kubectl = str(Path(sys.executable).with_name("kubectl"))
    subprocess.run([kubectl, "apply", "-f", str(REPO / "crds")], check=True, capture_output=True)
    with contextlib.ExitStack() as cleanup:
        core.create_node(
            {
                "metadata": {
                    "name": NODE,
                    "labels": {"kubernetes.io/hostname": NODE, "type": "kwok"},
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                },
                "spec": {"taints": [TAINT], "podCIDR": POD_CIDR},
            }
        )
        cleanup.callback(core.delete_node, NODE)
        kwok = subprocess.Popen(
            [
                str(KWOK),
                "--kubeconfig",
                os.environ["KUBECONFIG"],
                "--manage-single-node",
                NODE,
                "--cidr",
                POD_CIDR,
                "--config",
                str(stages_file(work)),
                "--server-address",
                f"127.0.0.1:{free_port()}",
            ],
            stdout=(work / "kwok.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop, kwok)
        core.create_namespace({"metadata": {"name": namespace}})
        cleanup.callback(_delete_namespace, core, namespace)
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": "bench-token"}, "stringData": {"token": TOKEN}}
        )
        custom.create_namespaced_custom_object(
            "kopf.dev",
            "v1",
            namespace,
            "kopfpeerings",
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "equiguard"}},
        )
        metrics_port = free_port()
        operator = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("equiguard")),
                "operator",
                "-n",
                namespace,
                "--tick",
                "1",
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                str(metrics_port),
                "--liveness",
                f"http://127.0.0.1:{free_port()}/healthz",
            ],
            stdout=(work / "operator.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_stop, operator)
        # Before the operator stops: it releases its finalizer on each model.
        cleanup.callback(_delete_models, custom, namespace)
        server = StatsServer(statistics_json())
        latencies = Latencies(namespace)
        cleanup.callback(latencies.stop.set)
        run(args, core, custom, namespace, operator, server, latencies)
    return 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _delete_models(custom: Any, namespace: str) -> None:
    custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, "clinicalmodels")
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "clinicalmodels")[
            "items"
        ]
    ):
        time.sleep(2)


def _delete_namespace(core: Any, namespace: str) -> None:
    core.delete_namespace(namespace)
    # kwok (stopped after this) completes the pods' deletion; a kubelet would.
    deadline = time.time() + 120
    while core.list_namespaced_pod(namespace).items and time.time() < deadline:
        time.sleep(2)


def run(
    args: argparse.Namespace,
    core: Any,
    custom: Any,
    namespace: str,
    operator: subprocess.Popen[bytes],
    server: StatsServer,
    latencies: Latencies,
) -> None:
    """The measurement: a baseline of one model, then --models models."""
    memory: list[float] = []

    def tend(until: float) -> None:
        """Binds the stats server on new pod addresses and samples memory until `until`."""
        while time.time() < until:
            for pod in core.list_namespaced_pod(namespace).items:
                if pod.status.pod_ip:
                    server.bind(pod.status.pod_ip)
            memory.append(rss_mib(operator.pid))
            time.sleep(1)

    tend(time.time() + 5)
    idle = rss_mib(operator.pid)
    # The baseline model is evaluated every 5 s, for enough samples in a minute.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "clinicalmodels", model_body("baseline", 5)
    )
    start = time.time()
    tend(start + BASELINE_SECONDS + 15)
    baseline = latencies.between(start + 15, time.time())
    baseline_memory = max(memory)
    for i in range(args.models):
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "clinicalmodels",
            copy.deepcopy(model_body(f"model-{i:03d}", args.interval)),
        )
    # Let every model deploy and settle into its rhythm, then measure.
    tend(time.time() + 2 * args.interval)
    measured_from = time.time()
    memory.clear()
    tend(measured_from + args.seconds)
    scaled = latencies.between(measured_from, time.time())
    evaluated = {name for name in latencies.seen if name.startswith("model-")}
    print(
        f"models: {args.models} (evaluated: {len(evaluated)}), interval {args.interval}s, "
        f"pods with statistics: {len(server.bound)}"
    )
    print("evaluation-to-status latency (s)   p50      p95      n    evaluations/s")
    for label, values, seconds in (
        ("baseline, 1 model every 5 s", baseline, BASELINE_SECONDS),
        (f"{args.models} models", scaled, args.seconds),
    ):
        print(
            f"  {label:<32} {percentile(values, 0.5):7.3f}  {percentile(values, 0.95):7.3f}"
            f"  {len(values):5d}  {len(values) / seconds:6.2f}"
        )
    p50_ratio = statistics.median(scaled) / statistics.median(baseline)
    print(f"  ratio of medians (scaled / baseline): {p50_ratio:.2f}")
    print(
        f"operator memory (MiB): idle {idle:.0f}, 1 model {baseline_memory:.0f}, "
        f"{args.models} models max {max(memory):.0f} "
        f"(ratio {max(memory) / baseline_memory:.2f})"
    )
    p95 = percentile(scaled, 0.95)
    record(
        Result(
            benchmark="operator_scale",
            measure=f"evaluation-to-status latency, {args.models} models on kwok (p95 {p95:.2f} s)",
            unit="s",
            value=Spread.of(scaled),
            baseline_name="1 model",
            baseline=Spread.of(baseline),
            goal="p95 <= 2 s",
            met=p95 <= 2.0,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
