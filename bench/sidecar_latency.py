"""Latency and throughput the sidecar adds in front of a real BentoML server.

Baseline, in the same run: the same requests sent to the BentoML server
directly. At one connection the two targets take turns request by request
(each over its own kept-alive connection, the order swapped every pair), so
that the machine's load, which on a shared machine drifts by more than the
sidecar adds, hits both alike. At more connections, where throughput is the
question, rounds of a fixed time alternate between the targets. Prints the
median over rounds of p50 and p99, the latency added by the sidecar, and the
throughput ratio, and the CPU time each server spends per request: the
sidecar process's, and beside it the BentoML server's (its process group), read
from /proc over each round, so it includes whatever each does in the
background (the sidecar's store commits, for one).

Goals (issue 4): added p99 <= 1 ms at 1 connection; throughput with the
sidecar >= 90 % of direct.

    .venv/bin/python bench/sidecar_latency.py [--seconds 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.cohort import generate_cohort, prediction_requests
from harness import Result, Spread, record
from helpers.bento import build_readmission_bentos, served_bento
from helpers.sidecar import running_sidecar, sidecar_config

CpuClock = Callable[[], float]  # CPU seconds a server has used so far


@dataclass
class Round:
    latencies: np.ndarray  # seconds
    seconds: float
    cpu_seconds: float  # the target server's, over the round

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_per_request(self) -> float:
        return self.cpu_seconds / len(self.latencies) * 1e6  # microseconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000.0  # milliseconds


def process_cpu(pid: int, descendants: bool = False) -> CpuClock:
    """User and system time of a process, with `descendants` of every process below it
    too, from /proc: no dependency, and it counts every thread."""
    tick = os.sysconf("SC_CLK_TCK")

    def stats() -> dict[int, list[str]]:
        found = {}
        for entry in os.listdir("/proc") if descendants else [str(pid)]:
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as stat:
                        # After the command name, which may hold spaces and parentheses.
                        found[int(entry)] = stat.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # it has exited meanwhile
        return found

    def seconds() -> float:
        table = stats()
        tree, total = {pid}, 0
        for process in sorted(table):  # a child's id is mostly above its parent's
            if process in tree or int(table[process][1]) in tree:
                tree.add(process)
        for process in sorted(table):  # once more, for ids that wrapped around
            if int(table[process][1]) in tree:
                tree.add(process)
        for process in tree & table.keys():
            total += int(table[process][11]) + int(table[process][12])
        return total / tick

    return seconds


async def load(
    url: str,
    payloads: list[tuple[bytes, dict[str, str]]],
    connections: int,
    seconds: float,
    cpu: CpuClock,
) -> Round:
    """`connections` clients, each sending its next request as soon as the last one answered."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client(offset: int, deadline: float) -> None:
            i = offset
            while time.perf_counter() < deadline:
                body, headers = payloads[i % len(payloads)]
                i += connections
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        warm = time.perf_counter() + 0.5
        await asyncio.gather(*(client(c, warm) for c in range(connections)))
        latencies.clear()
        cpu_before = cpu()
        started = time.perf_counter()
        await asyncio.gather(*(client(c, started + seconds) for c in range(connections)))
        elapsed = time.perf_counter() - started
        cpu_used = cpu() - cpu_before
    return Round(np.array(latencies), elapsed, cpu_used)


async def take_turns(
    urls: dict[str, str],
    payloads: list[tuple[bytes, dict[str, str]]],
    seconds: float,
    cpu: Mapping[str, CpuClock],
) -> dict[str, Round]:
    """One connection per target; the targets answer the same request in turn."""
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    sessions = {name: aiohttp.ClientSession() for name in urls}
    try:

        async def send(name: str, body: bytes, headers: dict[str, str]) -> float:
            started = time.perf_counter()
            async with sessions[name].post(urls[name], data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{urls[name]} answered {response.status}")
            return time.perf_counter() - started

        order = list(urls)
        for warm in range(50):
            for name in order:
                await send(name, *payloads[warm % len(payloads)])
        cpu_before = {name: clock() for name, clock in cpu.items()}
        started = time.perf_counter()
        i = 0
        while time.perf_counter() < started + seconds:
            body, headers = payloads[i % len(payloads)]
            for name in order if i % 2 else reversed(order):
                latencies[name].append(await send(name, body, headers))
            i += 1
        cpu_used = {name: clock() - cpu_before[name] for name, clock in cpu.items()}
    finally:
        for session in sessions.values():
            await session.close()
    # Taking turns, each target is busy only for its own requests: its
    # throughput is that of one connection kept busy, 1 / mean latency.
    return {
        name: Round(np.array(values), sum(values), cpu_used[name])
        for name, values in latencies.items()
    }


def load_average(when: str) -> str:
    """Other work on a shared machine moves these figures: say how much there was."""
    one, five, fifteen = os.getloadavg()
    return f"load average at the {when}: {one:.2f} {five:.2f} {fifteen:.2f}"


def summarize(name: str, rounds: list[Round]) -> dict[str, float]:
    return {
        "p50": statistics.median(r.percentile(50) for r in rounds),
        "p99": statistics.median(r.percentile(99) for r in rounds),
        "rps": statistics.median(r.throughput for r in rounds),
        "cpu": statistics.median(r.cpu_per_request for r in rounds),
    }


def record_one_connection(rounds: dict[str, list[Round]]) -> None:
    """The serving-path goal: what the sidecar adds at one connection, round by round."""
    added99 = [
        s.percentile(99) - d.percentile(99)
        for s, d in zip(rounds["sidecar"], rounds["direct"], strict=True)
    ]
    share = [
        s.throughput / d.throughput
        for s, d in zip(rounds["sidecar"], rounds["direct"], strict=True)
    ]
    direct99 = [d.percentile(99) for d in rounds["direct"]]
    record(
        Result(
            benchmark="sidecar_latency",
            measure="p99 added by the sidecar, 1 connection",
            unit="ms",
            value=Spread.of(added99),
            baseline_name="BentoML direct p99",
            baseline=Spread.of(direct99),
            goal="<= +1 ms",
            met=statistics.median(added99) <= 1.0,
        )
    )
    record(
        Result(
            benchmark="sidecar_latency",
            measure="throughput through the sidecar, share of direct, 1 connection",
            unit="share",
            value=Spread.of(share),
            goal=">= 0.90",
            met=statistics.median(share) >= 0.90,
        )
    )
    record(
        Result(
            benchmark="sidecar_latency",
            measure="sidecar CPU per proxied request, 1 connection",
            unit="us",
            value=Spread.of([s.cpu_per_request for s in rounds["sidecar"]]),
            baseline_name="BentoML server CPU per direct request",
            baseline=Spread.of([d.cpu_per_request for d in rounds["direct"]]),
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per target and concurrency")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    requests = prediction_requests(generate_cohort(2_000, 7))
    payloads = [
        (json.dumps(r.body).encode(), r.headers | {"Content-Type": "application/json"})
        for r in requests
    ]
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        folder = Path(scratch)
        build_readmission_bentos(folder)
        with (
            served_bento(folder, "readmission:v1") as bento,
            running_sidecar(sidecar_config(bento.url, folder), folder) as sidecar,
        ):
            targets = {"direct": f"{bento.url}/predict", "sidecar": f"{sidecar.url}/predict"}
            # The model server's workers are processes below it.
            cpu = {
                "direct": process_cpu(bento.process.pid, descendants=True),
                "sidecar": process_cpu(sidecar.process.pid),
            }
            print(load_average("start"))
            print(
                f"{'connections':>11} {'target':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
                f"{'CPU us/req':>10}"
            )
            for connections in args.connections:
                rounds: dict[str, list[Round]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    if connections == 1:
                        turns = asyncio.run(take_turns(targets, payloads, args.seconds, cpu))
                        for name, turn in turns.items():
                            rounds[name].append(turn)
                        continue
                    for name, url in targets.items():
                        rounds[name].append(
                            asyncio.run(load(url, payloads, connections, args.seconds, cpu[name]))
                        )
                result = {name: summarize(name, r) for name, r in rounds.items()}
                for name, row in result.items():
                    print(
                        f"{connections:>11} {name:>8} {row['p50']:>8.3f} {row['p99']:>8.3f} "
                        f"{row['rps']:>8.0f} {row['cpu']:>10.0f}"
                    )
                added50 = result["sidecar"]["p50"] - result["direct"]["p50"]
                added99 = result["sidecar"]["p99"] - result["direct"]["p99"]
                ratio = result["sidecar"]["rps"] / result["direct"]["rps"]
                print(
                    f"{connections:>11} {'added':>8} {added50:>8.3f} {added99:>8.3f} "
                    f"{ratio:>7.0%} of direct throughput"
                )
                if connections == 1:
                    record_one_connection(rounds)
            print(load_average("end"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
