"""Putting the sidecar together: the front, the aiohttp application and what runs beside it.

At start-up the store is opened and the statistics (labelled ones and the
scores of every prediction) are rebuilt from it before the port opens, so a
restarted sidecar reports everything it acknowledged before. Then two loops
run: upkeep (expiry, the replica lease, the backlog gauge) and the SLO
evaluation of this replica's own view. The port is the front's (front.py);
the application listens on a Unix socket of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.sidecar.api import Endpoints
from equiguard.sidecar.exporter import Rendering, SubgroupCollector
from equiguard.sidecar.front import Front
from equiguard.sidecar.health import Health
from equiguard.sidecar.http1 import UpstreamConnection, UpstreamPool
from equiguard.sidecar.journal import PredictionJournal
from equiguard.sidecar.predictions import PredictionPath
from equiguard.sidecar.proxy import Proxy
from equiguard.sidecar.publication import Publisher, declared_windows
from equiguard.sidecar.statistics import LiveStatistics
from equiguard.sidecar.store import PredictionStore
from equiguard.sidecar.store_postgres import PostgresStore
from equiguard.sidecar.store_sqlite import SqliteStore
from equiguard.sidecar.token import BearerToken
from equiguard.sidecar.writer import RecordWriter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_SECONDS = 30.0
# Predictions waiting for the store beyond this many are dropped (and counted).
MAX_QUEUED_PREDICTIONS = 200_000
# Kept-alive connections the front keeps to the model server and to the application.
MAX_IDLE_CONNECTIONS = 64
# Connections the front opens to the application at most (it proxies what is
# not a prediction, with config.upstream_connections of its own to the model).
APPLICATION_CONNECTIONS = 64
# How much longer the front waits for the application than the application
# waits for the model server.
APPLICATION_MARGIN_SECONDS = 5.0
# Where the application's socket goes: not TMPDIR, which can be longer than a
# Unix socket's path may be (107 bytes). In a pod, /tmp is an emptyDir.
SOCKET_PARENT = "/tmp"
# How long a stopping sidecar lets requests in progress finish.
SHUTDOWN_SECONDS = 10.0

STATISTICS = web.AppKey("statistics", LiveStatistics)
PREDICTIONS = web.AppKey("predictions", PredictionPath)
SUBGROUPS = web.AppKey("subgroups", SubgroupCollector)


def store_opener(config: SidecarConfig) -> Callable[[], PredictionStore]:
    store = config.store
    if store.kind == "sqlite":
        return lambda: SqliteStore(store.path, config.replica_id)
    return lambda: PostgresStore(store.dsn(), config.replica_id, store.lease_seconds)


async def build_application(
    config: SidecarConfig, clock: Callable[[], float] = time.time
) -> web.Application:
    """The sidecar as an aiohttp application (its start-up rebuilds the statistics)."""
    registry = CollectorRegistry()
    health = Health(registry)
    statistics = LiveStatistics(config.spec, config.bucket_seconds, config.statistics_span_seconds)
    writer = RecordWriter(
        store_opener(config),
        PredictionJournal(config.journal_dir, config.replica_id),
        on_labelled=lambda labelled: statistics.add(labelled),
        on_commit=lambda seconds, _rows: health.store_commit_seconds.observe(seconds),
        on_drop=health.dropped_predictions.inc,
        max_queued_predictions=MAX_QUEUED_PREDICTIONS,
        clock=clock,
        on_store=lambda available: health.store_available.set(1 if available else 0),
        on_scored=statistics.add_scores,
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=config.upstream_connections),
        timeout=aiohttp.ClientTimeout(total=config.upstream_timeout_seconds),
        # A proxy keeps no cookies: one client's cookie must never reach another's request.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    publisher = Publisher(statistics, declared_windows(config.spec.slos, statistics.span_seconds))
    subgroups = SubgroupCollector(config, publisher, clock)
    token = BearerToken(config.token_file, config.token_env)
    proxy = Proxy(config, session, health)
    model = UpstreamPool(
        _tcp_connector(config.upstream), MAX_IDLE_CONNECTIONS, config.upstream_connections
    )
    predictions = PredictionPath(config, model, writer, statistics, health, clock)
    endpoints = Endpoints(config, writer, statistics, publisher, health, token, session, clock)

    async def upkeep(rebuild: bool) -> None:
        now = clock()
        result = await writer.call(
            lambda store: store.upkeep(
                now,
                pending_before=now - config.retention_seconds,
                labelled_before=now - max(config.retention_seconds, statistics.span_seconds),
            )
        )
        health.pending_predictions.set(result.pending)
        if result.evicted:
            log.warning("another replica adopted this replica's outcomes; rebuilding statistics")
        if rebuild or result.evicted:
            since = now - statistics.span_seconds
            # One call, so that no batch commits between the two reads.
            windows, score_windows = await writer.call(
                lambda store: (
                    statistics.rebuilt(store.labelled(since)),
                    statistics.rebuilt_scores(store.scored(since)),
                )
            )
            statistics.install(windows, score_windows)
        else:
            statistics.add_scored_rows(result.adopted_scores)
            statistics.add(result.adopted)

    async def evaluate() -> None:
        endpoints.evaluate()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await writer.start()
        await upkeep(rebuild=True)
        endpoints.evaluate()
        loops = [
            asyncio.create_task(
                _every("upkeep", UPKEEP_INTERVAL_SECONDS, lambda: upkeep(rebuild=False))
            ),
            asyncio.create_task(_every("evaluation", config.evaluation_interval_seconds, evaluate)),
        ]
        log.info(
            "sidecar ready: model %s/%s revision %s, %s store",
            config.namespace,
            config.model_name,
            config.revision,
            config.store.kind,
        )
        yield
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await writer.close()
        await session.close()
        model.close()

    refresh: asyncio.Future[Rendering] | None = None

    async def metrics(request: web.Request) -> web.Response:
        nonlocal refresh
        if subgroups.stale() and refresh is None:
            refresh = asyncio.get_running_loop().run_in_executor(
                None, subgroups.render, subgroups.snapshot()
            )
            refresh.add_done_callback(_rendered)
        if subgroups.rendering is None:
            assert refresh is not None
            await asyncio.shield(refresh)  # the first scrape waits for the first rendering
        assert subgroups.rendering is not None
        body = generate_latest(registry) + subgroups.rendering.text
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _rendered(job: asyncio.Future[Rendering]) -> None:
        nonlocal refresh
        refresh = None
        if not job.cancelled() and job.exception() is not None:
            log.error("rendering the subgroup metrics failed: %s", type(job.exception()).__name__)

    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATISTICS] = statistics
    app[PREDICTIONS] = predictions
    app[SUBGROUPS] = subgroups
    app.cleanup_ctx.append(lifecycle)
    app.add_routes(endpoints.routes())
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


@dataclass(frozen=True)
class Listening:
    port: int
    app: web.Application


@asynccontextmanager
async def running(
    config: SidecarConfig, tls: ssl.SSLContext | None = None, clock: Callable[[], float] = time.time
) -> AsyncIterator[Listening]:
    """The whole sidecar, serving until the block ends."""
    app = await build_application(config, clock)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # opens the store and rebuilds the statistics
    try:
        with tempfile.TemporaryDirectory(prefix="equiguard-sidecar-", dir=SOCKET_PARENT) as private:
            socket_path = os.path.join(private, "api.sock")
            await web.UnixSite(runner, socket_path).start()
            application = UpstreamPool(
                _unix_connector(socket_path), MAX_IDLE_CONNECTIONS, APPLICATION_CONNECTIONS
            )
            front = Front(
                app[PREDICTIONS],
                application,
                frozenset(path.encode() for path in config.prediction_paths),
                config.max_body_bytes,
                # Longer than the application's own wait for the model server,
                # so that a slow model gets the application's 504.
                config.upstream_timeout_seconds + APPLICATION_MARGIN_SECONDS,
                config.header_timeout_seconds,
                config.idle_timeout_seconds,
            )
            loop = asyncio.get_running_loop()
            server = await loop.create_server(
                front.connection, config.host, config.port, ssl=tls, reuse_address=True
            )
            try:
                yield Listening(server.sockets[0].getsockname()[1], app)
            finally:
                server.close()
                await front.drain(SHUTDOWN_SECONDS)
                application.close()
    finally:
        await runner.cleanup()  # commits what is queued and closes the store


def _tcp_connector(url: str) -> Callable[[], Awaitable[UpstreamConnection]]:
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if secure else 80)
    tls = ssl.create_default_context() if secure else None

    async def connect() -> UpstreamConnection:
        _, connection = await asyncio.get_running_loop().create_connection(
            UpstreamConnection, host, port, ssl=tls
        )
        return connection

    return connect


def _unix_connector(path: str) -> Callable[[], Awaitable[UpstreamConnection]]:
    async def connect() -> UpstreamConnection:
        _, connection = await asyncio.get_running_loop().create_unix_connection(
            UpstreamConnection, path
        )
        return connection

    return connect


async def _every(name: str, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except Exception as error:
            # Keep serving; the next round retries. Type only: messages may quote rows.
            log.error("periodic %s failed: %s", name, type(error).__name__)
