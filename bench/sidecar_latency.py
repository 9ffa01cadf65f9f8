"""Latency and throughput the sidecar adds in front of a real BentoML server.

Baseline, in the same run: the same requests sent to the BentoML server
directly. At one connection the two targets take turns request by request
(each over its own kept-alive connection, the order swapped every pair), so
that the machine's load, which on a shared machine drifts by more than the
sidecar adds, hits both alike. At more connections, where throughput is the
question, rounds of a fixed time alternate between the targets. Prints the
median over rounds of p50 and p99, the latency added by the sidecar, and the
throughput ratio.

Goals (issue 4): added p99 <= 1 ms at 1 connection; throughput with the
sidecar >= 90 % of direct.

    .venv/bin/python bench/sidecar_latency.py [--seconds 4] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.cohort import generate_cohort, prediction_requests
from harness import Result, Spread, record
from helpers.bento import build_readmission_bentos, served_bento
from helpers.sidecar import running_sidecar, sidecar_config


@dataclass
class Round:
    latencies: np.ndarray  # seconds
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000.0  # milliseconds


async def load(
    url: str, payloads: list[tuple[bytes, dict[str, str]]], connections: int, seconds: float
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
        started = time.perf_counter()
        await asyncio.gather(*(client(c, started + seconds) for c in range(connections)))
        elapsed = time.perf_counter() - started
    return Round(np.array(latencies), elapsed)


async def take_turns(
    urls: dict[str, str], payloads: list[tuple[bytes, dict[str, str]]], seconds: float
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
        started = time.perf_counter()
        i = 0
        while time.perf_counter() < started + seconds:
            body, headers = payloads[i % len(payloads)]
            for name in order if i % 2 else reversed(order):
                latencies[name].append(await send(name, body, headers))
            i += 1
    finally:
        for session in sessions.values():
            await session.close()
    # Taking turns, each target is busy only for its own requests: its
    # throughput is that of one connection kept busy, 1 / mean latency.
    return {name: Round(np.array(values), sum(values)) for name, values in latencies.items()}


def summarize(name: str, rounds: list[Round]) -> dict[str, float]:
    return {
        "p50": statistics.median(r.percentile(50) for r in rounds),
        "p99": statistics.median(r.percentile(99) for r in rounds),
        "rps": statistics.median(r.throughput for r in rounds),
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
            print(f"{'connections':>11} {'target':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
            for connections in args.connections:
                rounds: dict[str, list[Round]] = {name: [] for name in targets}
                for _ in range(args.rounds):
                    if connections == 1:
                        turns = asyncio.run(take_turns(targets, payloads, args.seconds))
                        for name, turn in turns.items():
                            rounds[name].append(turn)
                        continue
                    for name, url in targets.items():
                        rounds[name].append(
                            asyncio.run(load(url, payloads, connections, args.seconds))
                        )
                result = {name: summarize(name, r) for name, r in rounds.items()}
                for name, row in result.items():
                    print(
                        f"{connections:>11} {name:>8} {row['p50']:>8.3f} {row['p99']:>8.3f} "
                        f"{row['rps']:>8.0f}"
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
