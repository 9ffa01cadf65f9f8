"""What a calibrated revision adds to a request inside BentoML, on a busy machine.

The base bento's service and its calibrated revision are loaded in one
process and each served by BentoML's own HTTP app (validation, the worker
thread, serialisation; no socket), driven in turns. Each request is sent
`--tries` times to each and the least time of each kept: interference from
other processes only ever adds time, so the least of several tries is the
request's own cost even where `recalibration_serving.py`'s wall-clock rounds
are dominated by the wait for a core. Prints the median over the requests
and the ratio calibrated / base.

    .venv/bin/python bench/recalibration_in_process.py [--requests 300] [--tries 9]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.recalibration.bento import read_base
from harness import Result, Spread, record
from recalibration_serving import publish_candidate, requests

Batch = list[tuple[bytes, dict[str, str]]]


async def clients(home: Path, tag: str) -> tuple[Any, Any]:
    """HTTP clients of the base service's app and the calibrated revision's app."""
    import httpx
    from _bentoml_impl.loader import load
    from _bentoml_impl.server.app import ServiceAppFactory

    calibrated = load(tag, standalone_load=True)
    # Loading the revision imported its base source; the base service is in it.
    module_name, _, name = read_base(home, tag).service.partition(":")
    base = getattr(importlib.import_module(module_name), name)
    made = []
    for service in (base, calibrated):
        service.inject_config()  # the factory reads the service's configuration when made
        # One registry would hold both apps' metrics; neither app's metrics are measured.
        factory = ServiceAppFactory(service, is_main=True, enable_metrics=False)
        app = factory()
        await factory.create_instance(app)
        made.append(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
        )
    return made[0], made[1]


async def timed(client: Any, body: bytes, headers: dict[str, str]) -> float:
    started = time.perf_counter_ns()
    response = await client.post("/predict", content=body, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"the service answered {response.status_code}")
    return (time.perf_counter_ns() - started) / 1000.0


async def least_times(home: Path, tag: str, batch: Batch, tries: int) -> dict[str, list[float]]:
    base, calibrated = await clients(home, tag)
    for body, headers in batch[:30]:  # warm both up
        await timed(base, body, headers)
        await timed(calibrated, body, headers)
    least: dict[str, list[float]] = {"base": [], "calibrated": []}
    for body, headers in batch:
        times: dict[str, list[float]] = {"base": [], "calibrated": []}
        for _ in range(tries):
            times["base"].append(await timed(base, body, headers))
            times["calibrated"].append(await timed(calibrated, body, headers))
        for name, values in times.items():
            least[name].append(min(values))
    return least


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--tries", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        home = Path(scratch) / "bentoml"
        tag = publish_candidate(home)
        os.environ |= {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
        batch = requests(args.requests)
        least = asyncio.run(least_times(home, tag, batch, args.tries))
    base_us, calibrated_us = (statistics.median(least[n]) for n in ("base", "calibrated"))
    added = [c - b for b, c in zip(least["base"], least["calibrated"], strict=True)]
    low, _, high = statistics.quantiles(added, n=4)
    print(
        f"least of {args.tries} tries per request, median of {len(batch)} requests: "
        f"base {base_us:.0f} us, calibrated {calibrated_us:.0f} us, "
        f"ratio {calibrated_us / base_us:.3f}, added {statistics.median(added):+.0f} us "
        f"(quartiles {low:+.0f} to {high:+.0f}); load average {os.getloadavg()[0]:.1f}"
    )
    # Spread.of over the requests' least times: their median, and the range they took.
    record(
        Result(
            benchmark="recalibration_in_process",
            measure="least time per request of the calibrated revision, in BentoML's app",
            unit="us",
            value=Spread.of(least["calibrated"]),
            baseline_name="the base service",
            baseline=Spread.of(least["base"]),
            goal="ratio <= 1.05",
            met=calibrated_us / base_us <= 1.05,
        )
    )


if __name__ == "__main__":
    main()
