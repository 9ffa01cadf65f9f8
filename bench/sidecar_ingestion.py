"""Outcome ingestion through HTTP on the default SQLite store.

A sidecar starts on a store that already holds pending predictions; several
clients post outcome batches to /v1/outcomes until every prediction is
joined. Baseline, in the same run: the same batches joined by the store
directly (no HTTP, no validation, no statistics) on a copy of the same file,
which is the ceiling the endpoint can approach.

Goal (issue 4): >= 50,000 outcomes/s through HTTP.

    .venv/bin/python bench/sidecar_ingestion.py [--predictions 200000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.sidecar.records import Outcome, Prediction
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_sqlite import SqliteStore
from harness import Result, Spread, record
from helpers.bento import free_port
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config

RACES = ("White", "Black", "Asian", "Hispanic", "Other")


def preload(path: Path, n: int, now: float) -> None:
    store = SqliteStore(str(path), owner="replica-a")
    for start in range(0, n, 10_000):
        store.write(
            WriteBatch(
                predictions=[
                    Prediction(
                        f"req-{i:08d}",
                        now - 3600 + i * 1e-3,
                        "v1",
                        {
                            "race": RACES[i % 5],
                            "sex": ("female", "male")[i % 2],
                            "age_band": "65-79",
                            "payer": "Medicare",
                            "language": "English",
                            "adi_quintile": str(1 + i % 5),
                        },
                        (i % 97) / 97,
                        (i % 97) / 97 >= 0.3,
                    )
                    for i in range(start, min(n, start + 10_000))
                ]
            ),
            now,
        )
    store.close()


def batches(n: int, size: int) -> list[list[dict[str, object]]]:
    return [
        [{"request_id": f"req-{i:08d}", "label": i % 3 == 0} for i in range(s, min(n, s + size))]
        for s in range(0, n, size)
    ]


def direct(path: Path, work: list[list[dict[str, object]]], now: float) -> float:
    store = SqliteStore(str(path), owner="replica-a")
    started = time.perf_counter()
    joined = 0
    for batch in work:
        outcomes = [Outcome(str(item["request_id"]), bool(item["label"]), {}) for item in batch]
        joined += len(store.write(WriteBatch(outcomes=outcomes), now).labelled)
    elapsed = time.perf_counter() - started
    store.close()
    return joined / elapsed


async def through_http(url: str, work: list[list[dict[str, object]]], clients: int) -> float:
    bodies = [json.dumps({"outcomes": batch}).encode() for batch in work]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    accepted = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:

        async def client(offset: int) -> None:
            nonlocal accepted
            for body in bodies[offset::clients]:
                async with session.post(f"{url}/v1/outcomes", data=body, headers=headers) as r:
                    answer = await r.json()
                    accepted += answer["accepted"]

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    expected = sum(len(batch) for batch in work)
    if accepted != expected:
        raise RuntimeError(f"accepted {accepted} of {expected} outcomes")
    return accepted / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    now = time.time()
    work = batches(args.predictions, args.batch)
    http_rates, direct_rates = [], []
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        folder = Path(scratch)
        seed = folder / "seed.db"
        preload(seed, args.predictions, now)
        for _ in range(args.rounds):
            for leftover in folder.glob("predictions.db*"):
                leftover.unlink()
            shutil.copy(seed, folder / "predictions.db")
            # Nothing listens upstream: ingestion does not touch the model server.
            config = sidecar_config(f"http://127.0.0.1:{free_port()}", folder)
            with running_sidecar(config, folder) as sidecar:
                http_rates.append(asyncio.run(through_http(sidecar.url, work, args.clients)))
            shutil.copy(seed, folder / "direct.db")
            direct_rates.append(direct(folder / "direct.db", work, now))
            (folder / "direct.db").unlink()
    http_rate, direct_rate = statistics.median(http_rates), statistics.median(direct_rates)
    print(
        f"outcomes joined per second, median of {args.rounds} rounds of {args.predictions} "
        f"in batches of {args.batch}:"
    )
    print(f"  through HTTP ({args.clients} clients): {http_rate:>10,.0f}/s")
    print(f"  store alone (baseline):      {direct_rate:>10,.0f}/s")
    print(
        f"  ratio: {http_rate / direct_rate:.0%} of the store's own rate; goal 50,000/s "
        f"{'met' if http_rate >= 50_000 else 'not met'}"
    )
    record(
        Result(
            benchmark="sidecar_ingestion",
            measure=f"outcomes joined over HTTP, {args.clients} clients, SQLite",
            unit="outcomes/s",
            value=Spread.of(http_rates),
            baseline_name="the store alone",
            baseline=Spread.of(direct_rates),
            goal=">= 50,000/s",
            met=http_rate >= 50_000,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
