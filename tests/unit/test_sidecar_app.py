"""The sidecar's HTTP behaviour, in process, in front of a stand-in model server.

The stand-in only makes these tests fast; the same promises are checked
against a real `bentoml serve` in tests/integration/test_sidecar_bento.py.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from equiguard.contracts.sidecar_config import parse_config
from equiguard.engine.stats import Statistics
from equiguard.sidecar.app import SUBGROUPS, running
from equiguard.sidecar.exporter import COUNTS
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "secret-token"
COUNT_NAMES = [(count, name) for count, name, _ in COUNTS]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC: dict[str, Any] = {
    "prediction": {"scorePath": "$.risk", "threshold": "0.30"},
    "subgroups": {
        "attributes": [
            {"name": "race", "source": {"context": "race"}, "values": ["White", "Black"]},
            {
                "name": "age_band",
                "source": {"field": "age"},
                "bins": {"edges": ["18", "65"], "labels": ["18-64", "65+"]},
            },
            {
                "name": "language",
                "source": {"header": "X-Patient-Language"},
                "values": ["English", "Spanish"],
            },
        ],
    },
    "slos": [
        {
            "name": "tpr-gap-race",
            "metric": "tpr",
            "attribute": "race",
            "comparison": "maxGap",
            "threshold": "0.10",
            "window": "7d",
            "minSamples": 20,
            "confidence": "0.95",
            "consecutiveBreaches": 1,
            "action": "Alert",
        },
    ],
}


@dataclass
class Upstream:
    """A stand-in model server: answers {"risk": ...} and remembers what it was sent."""

    risk: float = 0.5
    received: list[tuple[CIMultiDict[str], bytes]] = field(default_factory=list)

    async def predict(self, request: web.Request) -> web.Response:
        self.received.append((request.headers.copy(), await request.read()))
        response = web.json_response({"risk": self.risk})
        response.set_cookie("session", f"for-{len(self.received)}")
        return response

    async def readyz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/predict", self.predict)
        app.router.add_get("/readyz", self.readyz)
        return app


@dataclass
class Harness:
    client: aiohttp.ClientSession  # to the sidecar's port
    port: int
    app: web.Application
    upstream: Upstream
    upstream_server: TestServer

    async def predict(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return await self.client.post("/predict", json=body, headers=headers or {})

    async def outcomes(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        response = await self.client.post("/v1/outcomes", json={"outcomes": items}, headers=AUTH)
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def stats(self) -> Statistics:
        response = await self.client.get("/v1/stats", headers=AUTH)
        assert response.status == 200
        return Statistics.from_dict(await response.json())


def config(upstream_port: int, folder: Path, **sidecar: Any) -> Any:
    """`sidecar` overrides; `upstream_host` names the model server's host."""
    host = sidecar.pop("upstream_host", "127.0.0.1")
    return parse_config(
        {
            "model": {"name": "readmission-risk", "namespace": "clinical", "revision": "v1"},
            "spec": SPEC,
            "sidecar": {
                "upstream": f"http://{host}:{upstream_port}",
                "tokenEnv": "SIDECAR_TOKEN",
                "store": {"type": "sqlite", "path": str(folder / "p.db")},
                "replicaId": "a",
                **sidecar,
            },
        }
    )


@asynccontextmanager
async def harness(
    folder: Path, upstream: Upstream | None = None, **sidecar: Any
) -> AsyncIterator[Harness]:
    upstream = upstream or Upstream()
    # The model server closes idle connections quickly, as uvicorn (5 s) does.
    upstream_server = TestServer(upstream.app(), keepalive_timeout=0.2)
    await upstream_server.start_server()
    try:
        settings = replace(config(upstream_server.port or 0, folder, **sidecar), port=0)
        async with (
            running(settings) as listening,
            aiohttp.ClientSession(f"http://127.0.0.1:{listening.port}") as client,
        ):
            yield Harness(client, listening.port, listening.app, upstream, upstream_server)
    finally:
        await upstream_server.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_TOKEN", TOKEN)


def test_records_a_prediction_and_forwards_the_request_without_its_context(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            response = await h.predict(
                {"age": 70, "los": 2, "equiguard_context": {"race": "Black"}},
                {"X-Request-Id": "r-1", "X-Patient-Language": "Spanish"},
            )
            assert response.status == 200
            assert response.headers["X-Request-Id"] == "r-1"
            assert await response.json() == {"risk": 0.5}
            headers, body = h.upstream.received[0]
            assert json.loads(body) == {"age": 70, "los": 2}
            assert headers["X-Request-Id"] == "r-1"
            assert headers["X-Patient-Language"] == "Spanish"
            assert await h.outcomes([{"request_id": "r-1", "label": 1}]) == {
                "accepted": 1,
                "unknown": 0,
                "duplicate": 0,
                "invalid": 0,
                "rejected": [],
            }
            stats = await h.stats()
            tp = stats.confusion()[0]
            for cell in (
                ("overall", "all"),
                ("race", "Black"),
                ("age_band", "65+"),
                ("language", "Spanish"),
            ):
                assert tp[stats.cells.index(cell)] == 1

    run(scenario)


def test_the_model_server_is_told_the_recorded_groups_never_the_clients_claim(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            spoofed = json.dumps({"race": "White"})
            await h.predict(
                {"age": 70, "equiguard_context": {"race": "Black"}},
                {"X-Request-Id": "r-1", "X-Equiguard-Groups": spoofed},
            )
            prediction_headers = h.upstream.received[0][0]
            groups = json.loads(prediction_headers["X-Equiguard-Groups"])
            assert groups["race"] == "Black"
            assert groups["age_band"] == "65+"
            assert prediction_headers.getall("X-Equiguard-Groups") == [
                prediction_headers["X-Equiguard-Groups"]
            ]

    run(scenario)


def test_a_cookie_set_for_one_client_never_reaches_another_clients_request(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        # By name: cookie jars ignore cookies of hosts given as IP addresses.
        async with harness(tmp_path, upstream_host="localhost") as h:
            first = await h.predict({"age": 30})
            assert first.cookies["session"].value == "for-1"
            h.client.cookie_jar.clear()  # the next request comes from someone else
            await h.predict({"age": 30})
            assert "Cookie" not in h.upstream.received[1][0]

    run(scenario)


def test_answers_a_generated_request_id_when_the_client_sends_none(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            first = await h.predict({"age": 30})
            second = await h.predict({"age": 30})
            ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
            assert len(ids) == 2
            assert h.upstream.received[0][0]["X-Request-Id"] in ids
            answer = await h.outcomes([{"request_id": i, "label": 0} for i in ids])
            assert answer["accepted"] == 2

    run(scenario)


def test_outcome_batches_are_answered_with_counts_by_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            for i in range(3):
                await h.predict({"age": 40}, {"X-Request-Id": f"r-{i}"})
            answer = await h.outcomes(
                [
                    {"request_id": "r-0", "label": 1},
                    {"request_id": "r-1", "label": 0, "race": "White"},
                    {"request_id": "r-0", "label": 0},
                    {"request_id": "never-seen", "label": 1},
                    {"request_id": "r-2", "label": "yes"},
                ]
            )
            assert answer == {
                "accepted": 2,
                "unknown": 1,
                "duplicate": 1,
                "invalid": 1,
                "rejected": [
                    {"index": 2, "status": "duplicate"},
                    {"index": 3, "status": "unknown"},
                    {
                        "index": 4,
                        "status": "invalid",
                        "reason": "label must be 0, 1, true or false",
                    },
                ],
            }
            # The feed's race fills the prediction's unknown race.
            stats = await h.stats()
            assert stats.confusion()[2][stats.cells.index(("race", "White"))] == 0
            assert stats.confusion()[1][stats.cells.index(("race", "White"))] == 1

    run(scenario)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": TOKEN}, 401)],
)
def test_write_endpoints_refuse_calls_without_the_token_and_change_nothing(
    tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await h.predict({"age": 40}, {"X-Request-Id": "r-0"})
            item = {"request_id": "r-0", "label": 1}
            refused = await h.client.post(
                "/v1/outcomes", json={"outcomes": [item]}, headers=headers
            )
            assert refused.status == status
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            records = await h.client.post("/v1/records", json={"records": []}, headers=headers)
            assert records.status == status
            assert (await h.client.get("/v1/stats", headers=headers)).status == status
            assert (await h.outcomes([item]))["accepted"] == 1

    run(scenario)


def test_records_from_a_batch_scorer_count_like_joined_predictions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            records = [
                {"request_id": f"b-{i}", "score": 0.9, "label": 1, "race": "Black", "age_band": 70}
                for i in range(12)
            ]
            response = await h.client.post("/v1/records", json={"records": records}, headers=AUTH)
            assert await response.json() == {
                "accepted": 12,
                "unknown": 0,
                "duplicate": 0,
                "invalid": 0,
                "rejected": [],
            }
            again = await h.client.post("/v1/records", json={"records": records[:2]}, headers=AUTH)
            assert (await again.json())["duplicate"] == 2
            stats = await h.stats()
            assert stats.confusion()[0][stats.cells.index(("age_band", "65+"))] == 12

    run(scenario)


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "reason"),
    [
        ("/predict", b'{"age": ', "application/json", 400, "the request body is not valid JSON"),
        ("/predict", b'{"equiguard_context": 3}', "application/json", 400, "equiguard_context"),
        ("/v1/outcomes", b"{", "application/json", 400, "the body is not valid JSON"),
        ("/v1/outcomes", b'{"items": []}', "application/json", 400, 'one field, "outcomes"'),
        ("/v1/outcomes", b'{"outcomes": []}', "text/plain", 415, "application/json"),
        ("/v1/records", b'{"records": 1}', "application/json", 400, '"records" must be a list'),
    ],
)
def test_bad_input_gets_a_client_error_with_a_reason_and_reaches_no_model(
    tmp_path: Path, path: str, body: bytes, content_type: str, status: int, reason: str
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            response = await h.client.post(
                path, data=body, headers={**AUTH, "Content-Type": content_type}
            )
            assert response.status == status
            assert reason in (await response.json())["error"]
            assert h.upstream.received == []
            assert (await h.predict({"age": 40})).status == 200

    run(scenario)


def test_the_sidecars_own_paths_answer_wrong_methods_and_unknown_paths_themselves(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            wrong = await h.client.get("/v1/outcomes", headers=AUTH)
            assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
            missing = await h.client.post("/v1/outcome", json={}, headers=AUTH)
            assert missing.status == 404
            assert "/v1/outcomes" in (await missing.json())["error"]
            assert h.upstream.received == []

    run(scenario)


def test_an_oversized_body_is_refused_with_413(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path, maxBodyBytes=4096) as h:
            response = await h.predict({"age": 40, "notes": "x" * 5000})
            assert response.status == 413
            assert h.upstream.received == []
            assert (await h.predict({"age": 40})).status == 200

    run(scenario)


def test_an_unreachable_model_gets_502_and_readyz_fails_until_it_is_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            assert (await h.client.get("/readyz")).status == 200
            await h.upstream_server.close()
            response = await h.predict({"age": 40})
            assert response.status == 502
            assert (await response.json())["error"] == "the model server is unreachable"
            assert (await h.client.get("/readyz")).status == 503
            assert (await h.client.get("/healthz")).status == 200

    run(scenario)


def test_statistics_are_rebuilt_from_the_store_after_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            for i in range(20):
                await h.predict(
                    {"age": 30 + i, "equiguard_context": {"race": "White"}},
                    {"X-Request-Id": f"r-{i}"},
                )
            await h.outcomes([{"request_id": f"r-{i}", "label": i % 2} for i in range(20)])
            before = (await h.stats()).to_dict()
        async with harness(tmp_path) as h:
            assert (await h.stats()).to_dict() == before
            # Joined before the restart: a resent outcome is a duplicate, not counted twice.
            assert (await h.outcomes([{"request_id": "r-0", "label": 0}]))["duplicate"] == 1

    run(scenario)


def test_prometheus_metrics_export_counts_and_hide_small_cells(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            races = ["White"] * 12 + ["Black"] * 3 + [None] * 11
            for i, race in enumerate(races):
                await h.predict(
                    {"age": 30, "equiguard_context": {"race": race}}, {"X-Request-Id": f"r-{i}"}
                )
            await h.outcomes([{"request_id": f"r-{i}", "label": 1} for i in range(len(races))])
            text = await (await h.client.get("/metrics")).text()
            samples = {
                (s.name, s.labels.get("attribute"), s.labels.get("group")): s
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            white = samples[("equiguard_window_true_positives", "race", "White")]
            assert white.value == 12
            assert white.labels == {
                "model": "readmission-risk",
                "namespace": "clinical",
                "revision": "v1",
                "window": "7d",  # the SLO window, the only one published
                "attribute": "race",
                "group": "White",
            }
            assert samples[("equiguard_window_true_positives", "overall", "all")].value == 26
            # Three Black patients: no sample, nor one from which 3 could be worked out.
            assert ("equiguard_window_true_positives", "race", "Black") not in samples
            assert ("equiguard_window_true_positives", "race", "unknown") not in samples
            outcomes = {
                s.labels["status"]: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "equiguard_sidecar_outcomes_total"
            }
            assert outcomes == {"accepted": 26, "unknown": 0, "duplicate": 0, "invalid": 0}
            assert "r-1" not in text

    run(scenario)


def test_v1_metrics_and_slo_answer_in_the_audit_shape(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            metrics = await (await h.client.get("/v1/metrics")).json()
            assert metrics["windowSeconds"] == 7 * 86400  # the SLO window
            assert set(metrics["metrics"]) == {"overall", "race", "age_band", "language"}
            # Another window could be subtracted from the SLO window: only with the token.
            refused = await h.client.get("/v1/metrics?window=1d")
            assert refused.status == 403
            assert (await refused.json())["error"] == (
                "window must be an SLO window (7d) without the bearer token"
            )
            other = await h.client.get("/v1/metrics?window=1d", headers=AUTH)
            assert (await other.json())["windowSeconds"] == 86400
            slo = await (await h.client.get("/v1/slo")).json()
            entry = slo["slos"]["tpr-gap-race"]
            assert entry["verdict"] == "Inconclusive"
            assert set(entry) >= {"reason", "message", "evidence", "state"}
            bad = await h.client.get("/v1/metrics?window=30d")
            assert bad.status == 400
            assert "at most" in (await bad.json())["error"]

    run(scenario)


def test_the_fast_exposition_says_what_prometheus_client_would_render(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            races = ["White"] * 15 + ["Black"] * 12 + [None] * 14
            for i, race in enumerate(races):
                await h.predict(
                    {"age": 30 + i, "equiguard_context": {"race": race}}, {"X-Request-Id": f"r-{i}"}
                )
            await h.outcomes([{"request_id": f"r-{i}", "label": i % 2} for i in range(len(races))])
            collector = h.app[SUBGROUPS]
            registry = CollectorRegistry()
            registry.register(collector)
            rendered = collector.render(collector.snapshot()).text.decode()
            reference = generate_latest(registry).decode()
            assert rendered == reference
            # The gauges hide exactly the counts /v1/metrics hides.
            report = (await (await h.client.get("/v1/metrics")).json())["metrics"]
            exported = {
                (s.labels["attribute"], s.labels["group"], s.name): s.value
                for family in text_string_to_metric_families(rendered)
                for s in family.samples
            }
            expected = {
                (dimension, group, name): float(block[count])
                for dimension, groups in report.items()
                for group, block in groups.items()
                for count, name in COUNT_NAMES
                if block[count] is not None
            }
            assert exported == expected
            assert 'equiguard_window_true_negatives{attribute="race",group="White",' in rendered

    run(scenario)


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Bytes written on one connection, and everything read until the sidecar closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def prediction_message(body: bytes, *headers: bytes) -> bytes:
    lines = [b"POST /predict HTTP/1.1", b"Host: sidecar", b"Content-Type: application/json"]
    return b"\r\n".join([*lines, *headers, b"", body])


def test_a_chunked_prediction_is_recorded_and_reaches_the_model_with_its_length(
    tmp_path: Path,
) -> None:
    body = b'{"age": 70, "equiguard_context": {"race": "Black"}}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)

    async def scenario() -> None:
        async with harness(tmp_path) as h:
            answer = await raw_exchange(
                h.port,
                prediction_message(
                    chunked,
                    b"Transfer-Encoding: chunked",
                    b"X-Request-Id: chunked-1",
                    b"Connection: close",
                ),
            )
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"x-request-id: chunked-1" in answer.lower()
            headers, forwarded = h.upstream.received[0]
            assert json.loads(forwarded) == {"age": 70}
            assert headers["Content-Length"] == str(len(forwarded))
            assert (
                headers["X-Equiguard-Groups"]
                == '{"age_band":"65+","language":"unknown","race":"Black"}'
            )

    run(scenario)


def test_a_client_that_expects_100_continue_is_told_to_send_its_body(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
            body = b'{"age": 40}'
            writer.write(
                prediction_message(b"", b"Expect: 100-continue", b"Content-Length: %d" % len(body))
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            assert final.startswith(b"HTTP/1.1 200 OK")
            writer.close()
            assert b"expect" not in {k.lower().encode() for k in h.upstream.received[0][0]}

    run(scenario)


def test_pipelined_requests_are_answered_in_order_on_one_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            body = b'{"age": 40}'
            first = prediction_message(body, b"Content-Length: %d" % len(body))
            second = b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"
            third = prediction_message(
                body, b"Content-Length: %d" % len(body), b"Connection: close"
            )
            answer = await raw_exchange(h.port, first + second + third)
            responses = answer.split(b"HTTP/1.1 200 OK\r\n")[1:]
            assert len(responses) == 3
            assert [b'"risk"' in response for response in responses] == [True, False, True]
            assert len(h.upstream.received) == 2

    run(scenario)


@pytest.mark.parametrize(
    "message",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ],
)
def test_a_request_the_sidecar_cannot_proxy_gets_400_with_a_reason_and_a_closed_connection(
    tmp_path: Path, message: bytes
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            answer = await raw_exchange(h.port, message)
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            assert b'"error"' in answer and b"connection: close" in answer.lower()
            assert (await h.predict({"age": 40})).status == 200

    run(scenario)


def test_a_model_connection_closed_while_idle_is_replaced_without_an_error(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            assert (await h.predict({"age": 40})).status == 200
            await asyncio.sleep(0.5)  # the model server has closed the idle connection
            assert (await h.predict({"age": 41})).status == 200
            assert len(h.upstream.received) == 2

    run(scenario)


def test_head_requests_to_model_paths_pass_through_and_the_connection_stays_usable(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            head = await h.client.head("/readyz")
            assert head.status == 200
            assert (await h.predict({"age": 40})).status == 200
            assert (await h.client.get("/readyz")).status == 200

    run(scenario)


def test_an_answer_cut_short_by_the_model_server_is_a_502_and_records_nothing(
    tmp_path: Path,
) -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"risk": 0.9')
        await writer.drain()
        writer.close()

    async def scenario() -> None:
        model = await asyncio.start_server(cut_short, "127.0.0.1", 0)
        settings = replace(config(model.sockets[0].getsockname()[1], tmp_path), port=0)
        async with (
            running(settings) as listening,
            aiohttp.ClientSession(f"http://127.0.0.1:{listening.port}") as client,
        ):
            response = await client.post("/predict", json={"age": 40})
            assert response.status == 502
            assert (await response.json())["error"] == "the model server is unreachable"
            exposition = await (await client.get("/metrics")).text()
            assert "equiguard_sidecar_upstream_errors_total 1.0" in exposition
            assert "equiguard_sidecar_predictions_total 0.0" in exposition
        model.close()

    run(scenario)


def test_the_sidecar_starts_where_tmpdir_is_longer_than_a_socket_path_may_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As where a runtime gives pods a TMPDIR deep in its own state folder.
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))

    async def scenario() -> None:
        async with harness(tmp_path) as h:
            assert (await h.predict({"age": 40})).status == 200

    run(scenario)


def test_connections_to_the_model_server_never_exceed_the_cap_and_every_request_is_answered(
    tmp_path: Path,
) -> None:
    cap, clients = 4, 40
    open_now = 0
    most = 0

    async def model(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                await asyncio.sleep(0.01)  # long enough for the other clients to queue up
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"risk": 0.5}')
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            open_now -= 1
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(model, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = replace(config(port, tmp_path, upstreamConnections=cap), port=0)
        async with running(settings) as listening:
            connector = aiohttp.TCPConnector(limit=clients)
            async with aiohttp.ClientSession(
                f"http://127.0.0.1:{listening.port}", connector=connector
            ) as client:
                answers = await asyncio.gather(
                    *(client.post("/predict", json={"age": 40}) for _ in range(clients))
                )
                assert [answer.status for answer in answers] == [200] * clients
        server.close()

    run(scenario)
    assert 1 <= most <= cap
