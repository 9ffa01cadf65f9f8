"""Score rows in a shared PostgreSQL: each counted once, by the replica that stored it.

Needs no cluster: a private PostgreSQL server from Debian's packages
(helpers.postgres). The label coverage goes with the replica that joined the
outcome, as the labelled rows do; a silent replica's scores are adopted.
Two in-process sidecars on one database answer the same after a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from equiguard.contracts.sidecar_config import parse_config
from equiguard.engine.scores import ScoreStatistics, sum_scores
from equiguard.sidecar.app import running
from equiguard.sidecar.records import Outcome, Prediction, ScoredRow
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_postgres import PostgresStore
from helpers.sidecar import TOKEN, sidecar_config

UNKNOWN = {"race": "unknown"}


def prediction(request_id: str, time: float, score: float) -> Prediction:
    return Prediction(request_id, time, "v1", UNKNOWN, score, score >= 0.5)


def rows(store: PostgresStore) -> list[tuple[float, dict[str, str], float, bool, bool]]:
    return [(r.time, dict(r.groups), r.score, r.scored, r.joined) for r in store.scored(0.0)]


def test_scores_are_counted_by_their_replica_and_coverage_by_the_joining_one(
    postgres_dsn: str,
) -> None:
    a = PostgresStore(postgres_dsn, "replica-a", lease_seconds=60)
    b = PostgresStore(postgres_dsn, "replica-b", lease_seconds=60)
    try:
        stored = a.write(
            WriteBatch(
                predictions=[
                    prediction("p1", 10.0, 0.2),
                    prediction("p2", 20.0, 0.7),
                    prediction("p1", 30.0, 0.9),  # a repeated request id: not stored again
                ]
            ),
            now=40.0,
        )
        assert [p.request_id for p in stored.scored] == ["p1", "p2"]
        again = b.write(WriteBatch(predictions=[prediction("p2", 21.0, 0.1)]), now=41.0)
        assert again.scored == []
        # The outcome fills in the race: the score stays counted where it was made.
        joined = b.write(
            WriteBatch(outcomes=[Outcome("p1", True, MappingProxyType({"race": "White"}))]),
            now=50.0,
        )
        assert joined.labelled[0].score_groups == UNKNOWN
        assert rows(a) == [(10.0, UNKNOWN, 0.2, True, False), (20.0, UNKNOWN, 0.7, True, False)]
        assert rows(b) == [(10.0, UNKNOWN, 0.2, False, True)]
        # A goes silent; B adopts its scores (and its labelled rows, of which it has none).
        a.upkeep(now=60.0, pending_before=0.0, labelled_before=0.0)
        upkeep = b.upkeep(now=200.0, pending_before=0.0, labelled_before=0.0)
        assert sorted(upkeep.adopted_scores, key=lambda r: r.time) == [
            ScoredRow(10.0, "v1", UNKNOWN, 0.2, True, False),
            ScoredRow(20.0, "v1", UNKNOWN, 0.7, True, False),
        ]
        assert rows(b) == [(10.0, UNKNOWN, 0.2, True, True), (20.0, UNKNOWN, 0.7, True, False)]
    finally:
        a.close()
        b.close()


async def _replicas_then_restart(dsn: str, folder: Path) -> None:
    upstream = web.Application()
    risk = iter(np.linspace(0.01, 0.99, 40).tolist())

    async def predict(request: web.Request) -> web.Response:
        return web.json_response({"risk": next(risk)})

    upstream.router.add_post("/predict", predict)
    model = TestServer(upstream)
    await model.start_server()
    configs = []
    for name in ("replica-a", "replica-b"):
        (folder / name).mkdir()
        document = sidecar_config(
            f"http://127.0.0.1:{model.port}",
            folder / name,
            store={"type": "postgresql", "dsnEnv": "STORE_DSN"},
            replica_id=name,
        )
        configs.append(replace(parse_config(document), port=0))
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scores(client: aiohttp.ClientSession) -> ScoreStatistics:
        async with client.get("/v1/scores", headers=auth) as response:
            assert response.status == 200, await response.text()
            return ScoreStatistics.from_dict(await response.json())

    try:
        async with (
            running(configs[0]) as a,
            running(configs[1]) as b,
            aiohttp.ClientSession(f"http://127.0.0.1:{a.port}") as to_a,
            aiohttp.ClientSession(f"http://127.0.0.1:{b.port}") as to_b,
        ):
            for i in range(40):
                client = to_a if i % 4 else to_b
                async with client.post(
                    "/predict", json={"age": 50}, headers={"X-Request-Id": f"r-{i}"}
                ) as response:
                    assert response.status == 200
            for _ in range(100):  # predictions commit in batches
                committed = [await scores(to_a), await scores(to_b)]
                if sum(int(s.counts[0].sum()) for s in committed) == 40:
                    break
                await asyncio.sleep(0.05)
            # Outcomes of predictions a served, sent to b: b joins them.
            outcomes = [{"request_id": f"r-{i}", "label": i % 2} for i in range(1, 40, 4)]
            async with to_b.post(
                "/v1/outcomes", json={"outcomes": outcomes}, headers=auth
            ) as response:
                assert (await response.json())["accepted"] == 10
            before = [await scores(to_a), await scores(to_b)]
        pooled = sum_scores(before)
        assert int(pooled.counts[0].sum()) == 40 and int(pooled.labelled[0]) == 10
        assert int(before[0].labelled[0]) == 0 and int(before[1].labelled[0]) == 10
        async with (
            running(configs[0]) as a,
            running(configs[1]) as b,
            aiohttp.ClientSession(f"http://127.0.0.1:{a.port}") as to_a,
            aiohttp.ClientSession(f"http://127.0.0.1:{b.port}") as to_b,
        ):
            after = [await scores(to_a), await scores(to_b)]
        assert [s.to_dict() for s in after] == [s.to_dict() for s in before]
    finally:
        await model.close()


def test_restarted_replicas_answer_their_scores_as_before_and_sum_to_the_pooled_ones(
    postgres_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORE_DSN", postgres_dsn)
    asyncio.run(_replicas_then_restart(postgres_dsn, tmp_path))
