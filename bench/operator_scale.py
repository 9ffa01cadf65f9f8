"""Benchmark: one operator evaluating a fleet of ClinicalModels whose pods kwok simulates.

    KUBECONFIG=... python bench/operator_scale.py [--models 200,1000,2000]
        [--pods-per-model 3] [--interval 60] [--seconds 120] [--tick 5]

On the local control plane (`make cluster-up`), kwok manages one tainted fake
node (only the benchmark's pods tolerate it) and gives each pod a loopback
address in 127.2.0.0/16, where this script serves the sidecar's GET /v1/stats
with real engine statistics. So every evaluation does all its real work:
apply the children, list pods, read the token, fetch and sum statistics,
evaluate the SLOs, write records and status.

First a baseline of one model, then the fleet grows stage by stage to each
size of --models (models are added, never recreated). For each stage, once
its pods are ready and every model has had an interval to settle: the
evaluation-to-status latency (from an evaluation's clock reading,
`status.lastEvaluationTime`, to the status change arriving on a watch) as
p50 and p95, evaluations per second, the operator's CPU seconds and API calls
per evaluation, its resident memory and memory per model, the machine's load
average, and each figure's ratio to the first stage.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from equiguard.cohort import generate_cohort
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from fleet_figures import Snapshot, StageFigures, rss_mib, table
from fleet_watch import Latencies, PodAddresses, StatsServer, percentile
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
NODE_CAPACITY = {"cpu": "100k", "memory": "64Pi", "pods": "1M"}


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


def model_body(name: str, interval: int, pods: int = 1) -> dict[str, Any]:
    body = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
    body["metadata"] = {"name": name}
    body["spec"]["replicas"] = pods
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", type=fleet_sizes, default=[200], help="fleet sizes, growing: 200,1000,2000"
    )
    parser.add_argument("--pods-per-model", type=int, default=3, help="each model's replicas")
    parser.add_argument("--interval", type=int, default=60, help="each model's evaluation interval")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time per stage")
    parser.add_argument(
        "--tick", type=float, default=5.0, help="the operator's --tick (its default: 5)"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=1800.0, help="seconds to wait for a stage's pods"
    )
    args = parser.parse_args()
    if not KWOK.exists() or not os.environ.get("KUBECONFIG"):
        print(
            "needs KUBECONFIG of the local control plane and kwok (make binaries)", file=sys.stderr
        )
        return 2
    config.load_kube_config()
    # Stopped in any way short of SIGKILL (also when started in the background,
    # where SIGINT is ignored), it still removes what it made.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
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
                # kwok's default node holds 1 TiB: at the pods' memory requests,
                # about 900 pods. kwok keeps what the node declares.
                "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY},
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
                str(args.tick),
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
        addresses = PodAddresses(namespace, server)
        cleanup.callback(addresses.stop.set)
        latencies = Latencies(namespace)
        cleanup.callback(latencies.stop.set)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        run(args, custom, namespace, operator, server, latencies, metrics_url)
    return 0


def fleet_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if sizes != sorted(sizes) or sizes[0] < 1:
        raise argparse.ArgumentTypeError("fleet sizes grow: 200,1000,2000")
    return sizes


def _exit_on_signal(signum: int, _: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def _delete_models(custom: Any, namespace: str) -> None:
    custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, "clinicalmodels")
    deadline = time.time() + 900
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
    deadline = time.time() + 900
    while core.list_namespaced_pod(namespace).items and time.time() < deadline:
        time.sleep(2)


def run(
    args: argparse.Namespace,
    custom: Any,
    namespace: str,
    operator: subprocess.Popen[bytes],
    server: StatsServer,
    latencies: Latencies,
    metrics_url: str,
) -> None:
    """The measurement: a baseline of one model, then each fleet size in turn."""
    memory: list[float] = []

    def tend(until: float) -> None:
        while time.time() < until:
            memory.append(rss_mib(operator.pid))
            time.sleep(1)

    tend(time.time() + 5)
    idle = rss_mib(operator.pid)
    # The baseline model is evaluated every 5 s, for enough samples in a minute.
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "clinicalmodels", model_body("baseline", 5, args.pods_per_model)
    )
    start = time.time()
    tend(start + BASELINE_SECONDS + 15)
    baseline = latencies.between(start + 15, time.time())
    print(
        f"baseline, 1 model of {args.pods_per_model} pods every 5 s: "
        f"p50 {percentile(baseline, 0.5):.3f} s, p95 {percentile(baseline, 0.95):.3f} s "
        f"(n {len(baseline)}), operator memory {max(memory):.0f} MiB ({idle:.0f} idle); "
        f"load {', '.join(f'{value:.1f}' for value in os.getloadavg())}",
        flush=True,
    )
    stages: list[StageFigures] = []
    created = 0
    for size in args.models:
        began = time.time()
        for i in range(created, size):
            body = model_body(f"model-{i:04d}", args.interval, args.pods_per_model)
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "clinicalmodels", copy.deepcopy(body)
            )
        created = size
        wanted = (size + 1) * args.pods_per_model
        while len(server.bound) < wanted and time.time() < began + args.ready_timeout:
            tend(time.time() + 5)
        ready = time.time() - began
        print(
            f"{size} models: {len(server.bound)} of {wanted} pods ready after {ready:.0f} s "
            f"({len(server.bound) / ready:.1f} pods/s)",
            flush=True,
        )
        # Every model evaluates once with its pods ready, then the window opens.
        tend(time.time() + args.interval)
        memory.clear()
        before = Snapshot.take(operator.pid, metrics_url, time.time())
        tend(before.at + args.seconds)
        after = Snapshot.take(operator.pid, metrics_url, time.time())
        scaled = latencies.between(before.at, after.at)
        figures = StageFigures.of(
            size,
            len(server.bound),
            (percentile(scaled, 0.5), percentile(scaled, 0.95)),
            before,
            after,
            max(memory),
            idle,
            os.getloadavg(),
        )
        stages.append(figures)
        print(table(stages), flush=True)
        record(
            Result(
                benchmark="operator_scale",
                measure=f"evaluation-to-status latency, {size} models of {args.pods_per_model} "
                f"pods on kwok (p95 {figures.p95:.2f} s, {figures.rss:.0f} MiB)",
                unit="s",
                value=Spread.of(scaled),
                baseline_name="1 model",
                baseline=Spread.of(baseline),
                goal="p95 <= 2 s, RSS <= 500 MiB",
                met=figures.p95 <= 2.0 and figures.rss <= 500,
            )
        )


if __name__ == "__main__":
    raise SystemExit(main())
