"""CPU time the sidecar's prediction path costs per request, without the model's noise.

One process, one uvloop: a stand-in model server that answers every request at
once with BentoML's answer to the readmission example, the real sidecar
(`equiguard.sidecar.app.running`, with its SQLite store and journal) in front
of it, and a client on one kept-alive connection to each. Rounds of requests
sent straight to the stand-in and rounds through the sidecar take turns; the
process's CPU time (every thread: the store's commits count) per request
through the sidecar, less that of a request sent straight, is what the
sidecar costs: parsing, extraction, the upstream exchange, the journal, the
answer and the event loop's part in each. CPU time is what another process's
time slices disturb least, so the profile of the path can be compared from
one change to the next on a busy machine.

    .venv/bin/python bench/sidecar_path_cpu.py [--requests 500] [--rounds 30] [--profile OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import cast

import httptools
import uvloop
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from equiguard.cohort import generate_cohort, prediction_requests
from equiguard.contracts.sidecar_config import load_config
from equiguard.sidecar.app import running
from harness import Result, Spread, record
from helpers.bento import LOOPBACK, free_port
from helpers.sidecar import sidecar_config

ANSWER = b'{"risk":0.2345678901234567,"model":"readmission_risk:v1"}'
HEADERS = (
    b"date: Tue, 08 Dec 2026 03:00:00 GMT\r\nserver: uvicorn\r\ncontent-type: application/json"
)
RESPONSE = b"HTTP/1.1 200 OK\r\n%s\r\ncontent-length: %d\r\n\r\n%s" % (HEADERS, len(ANSWER), ANSWER)


class StandInModel(asyncio.Protocol):
    """Answers each request as soon as it is whole."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


class Client(asyncio.Protocol):
    """One request at a time on one kept-alive connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.answered: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self.answered is not None
        self.answered.set_result(None)

    async def send(self, request: bytes) -> None:
        self.answered = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        await self.answered


def encoded_requests(port: int) -> list[bytes]:
    """The example's prediction requests as aiohttp's client sends them."""
    encoded = []
    for request in prediction_requests(generate_cohort(2_000, 7)):
        body = json.dumps(request.body).encode()
        headers = {
            "Host": f"{LOOPBACK}:{port}",
            "User-Agent": "Python/3.11 aiohttp/3.10",
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        } | request.headers
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        encoded.append(b"POST /predict HTTP/1.1\r\n" + head.encode() + b"\r\n" + body)
    return encoded


async def measure(requests: int, rounds: int, profile: str | None) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    model = await loop.create_server(StandInModel, LOOPBACK, 0)
    model_port = model.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        folder = Path(scratch)
        config_file = folder / "sidecar.yaml"
        upstream = f"http://{LOOPBACK}:{model_port}"
        config_file.write_text(yaml.safe_dump(sidecar_config(upstream, folder)))
        config = replace(load_config(str(config_file)), port=free_port())
        async with running(config):
            clients: dict[str, tuple[Client, list[bytes]]] = {}
            for name, port in (("direct", model_port), ("sidecar", config.port)):
                _, client = await loop.create_connection(Client, LOOPBACK, port)
                clients[name] = (client, encoded_requests(port))
                for request in clients[name][1][:300]:  # warm up
                    await client.send(request)
            profiler = cProfile.Profile() if profile else None
            cpu: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, (client, encoded) in clients.items():
                    if profiler and name == "sidecar":
                        profiler.enable()
                    started = time.process_time()
                    for i in range(requests):
                        await client.send(encoded[i % len(encoded)])
                    cpu[name].append((time.process_time() - started) / requests * 1e6)
                    if profiler and name == "sidecar":
                        profiler.disable()
            if profiler and profile:
                profiler.dump_stats(profile)
    model.close()
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per target")
    parser.add_argument("--profile", help="write a cProfile of the sidecar rounds here")
    args = parser.parse_args()
    cpu = uvloop.run(measure(args.requests, args.rounds, args.profile))
    added = [s - d for s, d in zip(cpu["sidecar"], cpu["direct"], strict=True)]
    spread = Spread.of(added)
    print(
        f"sidecar CPU per proxied request: {spread.median:.1f} us "
        f"({spread.low:.1f}-{spread.high:.1f}, {spread.rounds} rounds); "
        f"a request sent straight: {statistics.median(cpu['direct']):.1f} us"
    )
    record(
        Result(
            benchmark="sidecar_path_cpu",
            measure="CPU per request the sidecar adds, stand-in model, one process",
            unit="us",
            value=spread,
            baseline_name="CPU per request sent straight to the stand-in",
            baseline=Spread.of(cpu["direct"]),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
