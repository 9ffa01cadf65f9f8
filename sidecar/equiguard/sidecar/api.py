"""The sidecar's own endpoints: outcomes and records in, statistics and verdicts out.

Write endpoints, /v1/stats and /v1/scores (raw counts, for the operator to
sum) and /v1/outcomes/joined (labelled rows, for the recalibration Job) need the
bearer token; /v1/metrics and /v1/slo are open to the cluster, like
/metrics, and publish only the SLO windows, suppressed together
(`publication`): a difference of two windows must not disclose what each
hides, nor may a verdict's evidence. Other windows of /v1/metrics need the
token.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import aiohttp
from aiohttp import web
from equiguard.contracts import rows, scores_exchange, stats_exchange
from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.slo import SloState, SloVerdict, evaluate_slos
from equiguard.engine.spec import SpecError, parse_duration
from equiguard.engine.suppression import suppress_small_cells, suppress_verdicts
from equiguard.sidecar.batches import BadBatch, parse_outcomes, parse_records
from equiguard.sidecar.health import Health
from equiguard.sidecar.proxy import error_response
from equiguard.sidecar.publication import CONFIDENCE, Publisher, window_label
from equiguard.sidecar.records import ItemStatus
from equiguard.sidecar.statistics import LiveStatistics
from equiguard.sidecar.store_sqlite import SqliteStore
from equiguard.sidecar.token import BearerToken, TokenUnavailable
from equiguard.sidecar.writer import RecordWriter, StoreUnavailable
from prometheus_client import Counter

_ENDPOINTS = {
    "/v1/outcomes": "POST",
    "/v1/outcomes/joined": "GET",
    "/v1/records": "POST",
    "/v1/stats": "GET",
    "/v1/scores": "GET",
    "/v1/metrics": "GET",
    "/v1/slo": "GET",
}


@dataclass
class SloEvaluation:
    """The latest verdicts of this replica's own view, and the state they carry forward."""

    verdicts: dict[str, SloVerdict] = field(default_factory=dict)
    states: dict[str, SloState] = field(default_factory=dict)
    evaluated_at: float | None = None
    # What the published windows hid at that instant: the evidence hides it too.
    hidden: frozenset[tuple[str, str, str]] = frozenset()


@dataclass
class Endpoints:
    config: SidecarConfig
    writer: RecordWriter
    statistics: LiveStatistics
    publisher: Publisher
    health: Health
    token: BearerToken
    session: aiohttp.ClientSession
    clock: Callable[[], float] = time.time
    evaluation: SloEvaluation = field(default_factory=SloEvaluation)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/outcomes", self.outcomes),
            web.get("/v1/outcomes/joined", self.joined),
            web.post("/v1/records", self.records),
            web.get("/v1/stats", self.stats),
            web.get("/v1/scores", self.scores),
            web.get("/v1/metrics", self.metrics),
            web.get("/v1/slo", self.slo),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            # The rest of /v1 is the sidecar's too: never proxied to the model.
            web.route("*", "/v1/{tail:.*}", self.elsewhere),
        ]

    async def elsewhere(self, request: web.Request) -> web.Response:
        allowed = _ENDPOINTS.get(request.path)
        if allowed is None:
            return error_response(
                404, f"no such endpoint; the sidecar serves {', '.join(_ENDPOINTS)}"
            )
        response = error_response(405, f"{request.path} answers {allowed} only")
        response.headers["Allow"] = allowed
        return response

    async def outcomes(self, request: web.Request) -> web.Response:
        refused = await self._refuse_write(request)
        if refused is not None:
            return refused
        attributes = frozenset(a.name for a in self.config.attributes)
        try:
            batch = parse_outcomes(await request.read(), attributes, self.statistics.groups_of)
        except BadBatch as error:
            return error_response(400, str(error))
        try:
            _, statuses = await self.writer.submit([], batch.items)
        except StoreUnavailable as error:
            return error_response(503, f"{error}; nothing in this batch was recorded, retry later")
        return self._answer(batch.invalid, batch.positions, statuses, self.health.outcomes)

    async def joined(self, request: web.Request) -> web.Response:
        """A page of a revision's joined outcomes, for the recalibration Job (bearer token).

        Only for a SQLite store, which no one outside the pod can open; a
        PostgreSQL store is read where it is.
        """
        refused = self._authorize(request)
        if refused is not None:
            return refused
        if self.config.store.kind != "sqlite":
            return error_response(409, "this sidecar's store is PostgreSQL: read it there")
        query = request.query
        try:
            revision = query.get("revision", self.config.revision)
            since, until = float(query.get("since", "0")), float(query.get("until", "inf"))
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", str(rows.JOINED_PAGE_DEFAULT)))
        except ValueError:
            return error_response(400, "since, until: epoch seconds; after, limit: integers")
        if not 0 < limit <= rows.JOINED_PAGE_MAX or after < 0 or not since <= until:
            return error_response(
                400, f"limit must be 1 to {rows.JOINED_PAGE_MAX}, after >= 0 and since <= until"
            )
        try:
            found, following = await self.writer.call(
                lambda store: cast(SqliteStore, store).joined_page(
                    revision, since, until, after, limit
                )
            )
        except sqlite3.Error as error:
            return error_response(503, f"the store cannot be read: {error}")
        page = rows.JoinedPage(
            revision,
            tuple((t, rows.decode_groups(g), s, label) for t, g, s, label in found),
            None if following is None else str(following),
        )
        return web.json_response(page.to_dict())

    async def records(self, request: web.Request) -> web.Response:
        refused = await self._refuse_write(request)
        if refused is not None:
            return refused
        try:
            batch = parse_records(
                await request.read(),
                frozenset(a.name for a in self.config.attributes),
                self.statistics.groups_of,
                self.config.revision,
                self.statistics.threshold,
                self.clock(),
            )
        except BadBatch as error:
            return error_response(400, str(error))
        try:
            statuses, _ = await self.writer.submit(batch.items, [])
        except StoreUnavailable as error:
            return error_response(503, f"{error}; nothing in this batch was recorded, retry later")
        return self._answer(batch.invalid, batch.positions, statuses, self.health.records)

    async def stats(self, request: web.Request) -> web.Response:
        asked = self._raw_window(request)
        if isinstance(asked, web.Response):
            return asked
        revision, window = asked
        statistics = self.statistics.total(revision, self.clock(), window)
        body, headers = stats_exchange.answer(statistics, revision, window)
        return web.json_response(body, headers=headers)

    async def scores(self, request: web.Request) -> web.Response:
        """Every prediction's score and label coverage, like /v1/stats (and as guarded)."""
        asked = self._raw_window(request)
        if isinstance(asked, web.Response):
            return asked
        revision, window = asked
        scores = self.statistics.scores_total(revision, self.clock(), window)
        body, headers = scores_exchange.answer(scores, revision, window)
        return web.json_response(body, headers=headers)

    def _raw_window(self, request: web.Request) -> tuple[str, float] | web.Response:
        """The revision and window a raw reader asks for (the token required), or the refusal."""
        refused = self._authorize(request)
        if refused is not None:
            return refused
        window = self._window(request)
        if isinstance(window, web.Response):
            return window
        return stats_exchange.requested_revision(request.query, self.config.revision), window

    async def metrics(self, request: web.Request) -> web.Response:
        declared = self.publisher.windows
        window = declared[-1] if "window" not in request.query else self._window(request)
        if isinstance(window, web.Response):
            return window
        revision = request.query.get("revision", self.config.revision)
        now = self.clock()
        header = {**self._header(revision), "windowSeconds": window}
        if window in declared:
            return web.json_response(
                {**header, "metrics": self.publisher.at(revision, now).of(window)}
            )
        # Any other window could be subtracted from a declared one: raw readers only.
        refused = self._authorize(request)
        if refused is not None:
            if refused.status == 401:
                windows = ", ".join(window_label(w) for w in declared)
                return error_response(
                    403, f"window must be an SLO window ({windows}) without the bearer token"
                )
            return refused
        table = compute_metrics(self.statistics.total(revision, now, window), CONFIDENCE)
        report = {**header, "metrics": metrics_report(table)}
        return web.json_response(suppress_small_cells(report, self.statistics.layout))

    async def slo(self, request: web.Request) -> web.Response:
        if self.evaluation.evaluated_at is None:
            self.evaluate()
        evaluation = self.evaluation
        slos = {
            name: verdict.to_dict(evaluation.states[name])
            for name, verdict in evaluation.verdicts.items()
        }
        report = {
            **self._header(self.config.revision),
            "evaluatedAt": evaluation.evaluated_at,
            "slos": suppress_verdicts(slos, evaluation.hidden),
        }
        return web.json_response(report)

    def evaluate(self) -> None:
        """One evaluation of every SLO on this replica's statistics of its own revision.

        The SLO windows are read as the bucket's release published them (a
        verdict's evidence then shows no count its tables do not), and the
        verdicts are published once a bucket, as the tables are: the first
        evaluation in a bucket is the one /v1/slo shows until the next.
        """
        now = self.clock()
        revision = self.config.revision
        released = self.publisher.totals(revision, now)
        verdicts, states = evaluate_slos(
            self.config.spec.slos,
            lambda span: (
                released[span] if span in released else self.statistics.total(revision, now, span)
            ),
            self.evaluation.states,
            now,
        )
        hidden = self.publisher.at(revision, now).hidden
        published = self.evaluation.evaluated_at
        carried = self.evaluation
        self.evaluation = SloEvaluation(verdicts, states, now, hidden)
        if published is not None and self.publisher.bucket(published) == self.publisher.bucket(now):
            # Within the bucket the published verdicts stay; only the states move on.
            self.evaluation = SloEvaluation(carried.verdicts, states, published, carried.hidden)

    async def healthz(self, request: web.Request) -> web.Response:
        if not self.writer.running:
            return error_response(503, "the store writer has stopped")
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        try:
            async with self.session.get(
                self.config.upstream + "/readyz", timeout=aiohttp.ClientTimeout(total=2)
            ) as upstream:
                ready = upstream.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ready = False
        if not ready:
            return error_response(503, "the model server is not ready")
        # Ready to serve predictions whatever the store's state: they are
        # journalled and committed when it is back. Outcomes get 503 meanwhile.
        store = "available" if self.writer.store_available else "unavailable"
        return web.json_response({"status": "ready", "store": store})

    def _authorize(self, request: web.Request) -> web.Response | None:
        try:
            admitted = self.token.admits(request.headers.get("Authorization"))
        except TokenUnavailable as error:
            return error_response(503, f"{error}: the sidecar cannot check tokens until it has one")
        return None if admitted else _unauthorized()

    async def _refuse_write(self, request: web.Request) -> web.Response | None:
        refused = self._authorize(request)
        if refused is not None:
            return refused
        if request.content_type != "application/json":
            return error_response(415, "send the batch as application/json")
        return None

    def _window(self, request: web.Request) -> float | web.Response:
        text = request.query.get("window")
        if text is None:
            return self.statistics.span_seconds
        try:
            window = parse_duration(text)
        except (SpecError, ValueError):
            return error_response(400, "window must be a duration such as 30m, 24h or 7d")
        if not 0 < window <= self.statistics.span_seconds:
            return error_response(
                400,
                f"window must be positive and at most {self.statistics.span_seconds:g} seconds, "
                "the statistics this sidecar keeps",
            )
        return window

    def _header(self, revision: str) -> dict[str, object]:
        """The fields `equiguard audit --format json` opens with, and where they come from."""
        return {
            "model": self.config.model_name,
            "namespace": self.config.namespace,
            "revision": revision,
            "threshold": self.statistics.threshold,
            "confidence": CONFIDENCE,
        }

    def _answer(
        self,
        invalid: list[tuple[int, str]],
        positions: list[int],
        statuses: list[ItemStatus],
        counter: Counter,
    ) -> web.Response:
        """Counts by status, and which items (by position) were not accepted and why."""
        tally = collections.Counter(statuses)
        counts = {status.value: tally[status] for status in ItemStatus}
        counts[ItemStatus.INVALID.value] = len(invalid)
        rejected: list[tuple[int, dict[str, object]]] = [
            (index, {"index": index, "status": ItemStatus.INVALID.value, "reason": reason})
            for index, reason in invalid
        ]
        rejected += [
            (index, {"index": index, "status": status.value})
            for index, status in zip(positions, statuses, strict=True)
            if status is not ItemStatus.ACCEPTED
        ]
        for name, count in counts.items():
            if count:
                counter.labels(name).inc(count)
        rejected.sort(key=lambda item: item[0])
        return web.json_response({**counts, "rejected": [item for _, item in rejected]})


def _unauthorized() -> web.Response:
    response = error_response(401, "a valid bearer token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="equiguard"'
    return response
