"""What `operator_scale` serves and watches: the sidecars' statistics, pod addresses, latencies.

The simulated pods' sidecars are one aiohttp server bound on each pod's
loopback address; two watches (pods, models) run in threads of their own so
the measurement loop never lists thousands of objects.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

from aiohttp import web
from kubernetes import client as _client
from kubernetes import watch as _watch

client: Any = _client
watch: Any = _watch
GROUP, VERSION = "equiguard.io", "v1alpha1"
TOKEN = "bench-token"


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


class PodAddresses:
    """Binds the statistics server on each pod address as kwok hands it out (a watch:
    listing thousands of pods every second would load the API server the operator uses)."""

    def __init__(self, namespace: str, server: StatsServer) -> None:
        self.namespace, self.server = namespace, server
        self.stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        core = client.CoreV1Api()
        while not self.stop.is_set():
            stream = watch.Watch().stream(
                core.list_namespaced_pod, self.namespace, timeout_seconds=30
            )
            for event in stream:
                ip = event["object"].status.pod_ip
                if ip:
                    self.server.bind(ip)
                if self.stop.is_set():
                    return


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
