"""Latency a calibrated revision adds to the model server's answer.

A calibrated bento serves its base bento's service in-process and rewrites
the score for the request's group (read from the X-Equiguard-Groups header).
Baseline, in the same run: the same requests sent to the base bento. Both are
real `bentoml serve` processes on loopback; rounds alternate between the two
so that drift in the machine's load hits both alike. Prints per-round median
latency, the median of the rounds, and the ratio calibrated / base. Beside
it, the CPU time the server's processes spent per request in each round: on
a loaded machine wall-clock latency mostly measures the wait for a core,
while the CPU a request costs stays what it is.

    .venv/bin/python bench/recalibration_serving.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.cohort import FEATURES, generate_cohort
from equiguard.recalibration.bento import candidate_calibration, candidate_tag, publish, read_base
from equiguard.recalibration.maps import Layer, PlattMap
from harness import Result, Spread, record
from helpers.bento import BentoServer, build_readmission_bentos, served_bento
from helpers.recalibration import example_manifest

BASE = "readmission:v1"


def requests(n: int) -> list[tuple[bytes, dict[str, str]]]:
    cohort = generate_cohort(n, seed=7)
    out = []
    for i in range(n):
        body = json.dumps({name: cohort[name][i].item() for name in FEATURES}).encode()
        groups = json.dumps({"race": str(cohort["race"][i]), "sex": str(cohort["sex"][i])})
        out.append((body, {"Content-Type": "application/json", "X-Equiguard-Groups": groups}))
    return out


def publish_candidate(home: Path) -> str:
    """Build the base bentos into `home` and a calibrated revision of the base; its tag."""
    build_readmission_bentos(home)
    manifest = example_manifest()
    layer = Layer("race", "platt", {"Black": PlattMap(1.05, 0.9), "Asian": PlattMap(0.9, 0.1)})
    base = read_base(home, BASE)
    calibration = candidate_calibration(
        base, layer, manifest["spec"]["prediction"]["scorePath"], manifest["spec"]["subgroups"]
    )
    tag = candidate_tag(base, calibration)
    publish(base, calibration, tag, home)
    return tag


def round_median(url: str, batch: list[tuple[bytes, dict[str, str]]]) -> float:
    latencies = []
    for body, headers in batch:
        request = urllib.request.Request(f"{url}/predict", data=body, headers=headers)
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1000.0


def server_cpu_seconds(server: BentoServer) -> float:
    """User and system CPU time of the server and its workers so far."""
    leader = psutil.Process(server.process.pid)
    total = 0.0
    for process in (leader, *leader.children(recursive=True)):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measured_round(
    server: BentoServer, batch: list[tuple[bytes, dict[str, str]]]
) -> tuple[float, float]:
    """The round's median latency (ms) and the server's CPU time per request (ms)."""
    cpu_before = server_cpu_seconds(server)
    latency = round_median(server.url, batch)
    return latency, (server_cpu_seconds(server) - cpu_before) / len(batch) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        home = Path(scratch) / "bentoml"
        tag = publish_candidate(home)
        batch = requests(args.requests)
        with served_bento(home, BASE) as plain, served_bento(home, tag) as calibrated:
            for target in (plain, calibrated):  # warm both up
                round_median(target.url, batch[:20])
            results: dict[str, list[float]] = {"base": [], "calibrated": []}
            cpu: dict[str, list[float]] = {"base": [], "calibrated": []}
            for number in range(args.rounds):
                for name, server in (("base", plain), ("calibrated", calibrated)):
                    latency, cpu_ms = measured_round(server, batch)
                    results[name].append(latency)
                    cpu[name].append(cpu_ms)
                print(
                    f"round {number + 1}: base {results['base'][-1]:.2f} ms, "
                    f"calibrated {results['calibrated'][-1]:.2f} ms (median per request); "
                    f"server CPU per request: base {cpu['base'][-1]:.3f} ms, "
                    f"calibrated {cpu['calibrated'][-1]:.3f} ms"
                )
    base_ms = statistics.median(results["base"])
    calibrated_ms = statistics.median(results["calibrated"])
    print(
        f"median of rounds: base {base_ms:.2f} ms, calibrated {calibrated_ms:.2f} ms, "
        f"ratio {calibrated_ms / base_ms:.2f}, added {calibrated_ms - base_ms:+.2f} ms"
    )
    base_cpu, calibrated_cpu = statistics.median(cpu["base"]), statistics.median(cpu["calibrated"])
    print(
        f"server CPU per request, median of rounds: base {base_cpu:.3f} ms, "
        f"calibrated {calibrated_cpu:.3f} ms, ratio {calibrated_cpu / base_cpu:.2f}, "
        f"added {calibrated_cpu - base_cpu:+.3f} ms; load average {os.getloadavg()[0]:.1f}"
    )
    record(
        Result(
            benchmark="recalibration_serving",
            measure="median time per request of the calibrated revision",
            unit="ms",
            value=Spread.of(results["calibrated"]),
            baseline_name="the base bento",
            baseline=Spread.of(results["base"]),
            goal="ratio <= 1.05",
            met=calibrated_ms / base_ms <= 1.05,
        )
    )
    record(
        Result(
            benchmark="recalibration_serving",
            measure="server CPU time per request of the calibrated revision",
            unit="ms",
            value=Spread.of(cpu["calibrated"]),
            baseline_name="the base bento",
            baseline=Spread.of(cpu["base"]),
            goal="ratio <= 1.05",
            met=calibrated_cpu / base_cpu <= 1.05,
        )
    )


if __name__ == "__main__":
    main()
