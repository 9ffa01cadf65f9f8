"""The open outputs: the SLO windows only, and nothing they publish together (nor
the difference of two windows) discloses a count of 1 to 10, checked by the
solver attack.

Two SLO windows (1d and 7d). Black has 5 labelled predictions three days ago
and 15 today: each window alone publishes Black (15 and 20), and tables
suppressed one by one would give away the 5 by subtraction. The attacker
reads everything an unauthenticated reader gets (/v1/metrics of each window,
the Prometheus gauges, the verdicts' evidence) and bounds every count.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.suppression import suppress_small_cells
from equiguard.sidecar.app import STATISTICS, running
from helpers.attack import attack, combined, from_evidence, from_exposition
from test_sidecar_app import SPEC, TOKEN, Upstream, config

DAY = 86400.0
START = 1_767_225_600.0  # a Thursday in January 2026
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def two_windows() -> dict[str, Any]:
    spec = copy.deepcopy(SPEC)
    daily = {**spec["slos"][0], "name": "tpr-gap-race-daily", "window": "1d"}
    spec["slos"].append(daily)
    return spec


# (race, label, score) per prediction, three days ago and today.
EARLIER = [("White", i % 2, 0.2 + 0.6 * (i % 3 == 0)) for i in range(60)] + [
    ("Black", i % 2, 0.7) for i in range(5)
]
TODAY = [("White", i % 2, 0.2 + 0.6 * (i % 4 == 0)) for i in range(40)] + [
    ("Black", i % 3 == 0, 0.2 + 0.6 * (i % 2)) for i in range(15)
]


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDECAR_TOKEN", TOKEN)


def test_the_slo_windows_published_without_the_token_disclose_no_small_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("test_sidecar_app.SPEC", two_windows())
    now = [START]

    async def scenario() -> None:
        upstream = Upstream()
        server = TestServer(upstream.app(), keepalive_timeout=0.2)
        await server.start_server()
        try:
            settings = replace(config(server.port or 0, tmp_path), port=0)
            async with (
                running(settings, clock=lambda: now[0]) as listening,
                aiohttp.ClientSession(f"http://127.0.0.1:{listening.port}") as client,
            ):
                for phase, rows in ((0, EARLIER), (1, TODAY)):
                    now[0] = START + 3 * DAY * phase
                    outcomes = []
                    for i, (race, label, score) in enumerate(rows):
                        upstream.risk = score
                        rid = f"p{phase}-{i}"
                        response = await client.post(
                            "/predict",
                            json={"age": 40, "equiguard_context": {"race": race}},
                            headers={"X-Request-Id": rid},
                        )
                        assert response.status == 200
                        outcomes.append({"request_id": rid, "label": int(label)})
                    answer = await client.post(
                        "/v1/outcomes", json={"outcomes": outcomes}, headers=AUTH
                    )
                    assert answer.status == 200
                now[0] += 600.0
                published = []
                for window in ("1d", "7d"):
                    response = await client.get(f"/v1/metrics?window={window}")
                    assert response.status == 200
                    published.append((await response.json())["metrics"])
                # Any other window could be subtracted from these: refused.
                assert (await client.get("/v1/metrics?window=2d")).status == 403
                gauges = from_exposition(await (await client.get("/metrics")).text())
                slos = (await (await client.get("/v1/slo")).json())["slos"]
                statistics = listening.app[STATISTICS]
                truth = [
                    metrics_report(compute_metrics(statistics.total("v1", now[0], span)))
                    for span in (DAY, 7 * DAY)
                ]
        finally:
            await server.close()
        assert truth[0]["race"]["Black"]["n"] == 15
        assert truth[1]["race"]["Black"]["n"] == 20
        # The gauges publish these windows and no other span (no since-start counts).
        assert set(gauges) == {"1d", "7d"}
        evidence = {
            "1d": from_evidence({"tpr-gap-race-daily": slos["tpr-gap-race-daily"]}),
            "7d": from_evidence({"tpr-gap-race": slos["tpr-gap-race"]}),
        }
        read = [
            combined(table, gauges[label], evidence[label])
            for label, table in zip(("1d", "7d"), published, strict=True)
        ]
        assert attack(read, {}, truth) == []
        # The attack is not vacuous: the same windows suppressed one by one leak.
        separately = [
            suppress_small_cells({"metrics": t}, statistics.layout)["metrics"] for t in truth
        ]
        assert attack(separately, {}, truth)

    asyncio.run(scenario())


def test_answers_change_once_a_bucket_and_successive_ones_disclose_no_small_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four of Black's outcomes join between two answers: within the bucket every
    open output answers as before; in the next bucket the new answer and the old
    one together give nothing away, though the 4 follow from the same two tables
    suppressed one at a time."""
    monkeypatch.setattr("test_sidecar_app.SPEC", two_windows())
    now = [START]
    late = {f"p-{i}" for i, (race, _, _) in enumerate(TODAY) if race == "Black"}
    late = set(sorted(late)[:4])

    async def scenario() -> None:
        upstream = Upstream()
        server = TestServer(upstream.app(), keepalive_timeout=0.2)
        await server.start_server()
        try:
            settings = replace(config(server.port or 0, tmp_path), port=0)
            async with (
                running(settings, clock=lambda: now[0]) as listening,
                aiohttp.ClientSession(f"http://127.0.0.1:{listening.port}") as client,
            ):

                async def post_outcomes(outcomes: list[dict[str, Any]]) -> None:
                    answer = await client.post(
                        "/v1/outcomes", json={"outcomes": outcomes}, headers=AUTH
                    )
                    assert answer.status == 200

                async def open_answers() -> tuple[Any, ...]:
                    tables = [
                        (await (await client.get(f"/v1/metrics?window={w}")).json())["metrics"]
                        for w in ("1d", "7d")
                    ]
                    gauges = await (await client.get("/metrics")).text()
                    slos = (await (await client.get("/v1/slo")).json())["slos"]
                    return tables, from_exposition(gauges), slos

                held: list[dict[str, Any]] = []
                outcomes: list[dict[str, Any]] = []
                for i, (race, label, score) in enumerate(TODAY):
                    upstream.risk = score
                    response = await client.post(
                        "/predict",
                        json={"age": 40, "equiguard_context": {"race": race}},
                        headers={"X-Request-Id": f"p-{i}"},
                    )
                    assert response.status == 200
                    (held if f"p-{i}" in late else outcomes).append(
                        {"request_id": f"p-{i}", "label": int(label)}
                    )
                await post_outcomes(outcomes)
                statistics = listening.app[STATISTICS]
                now[0] = START + 600.0
                before = await open_answers()
                truth_before = metrics_report(compute_metrics(statistics.total("v1", now[0], DAY)))
                await post_outcomes(held)
                now[0] = START + 1200.0  # the same bucket (an hour, for a 1d window)
                assert await open_answers() == before
                now[0] = START + 3600.0 + 60.0  # the next bucket
                after = (await (await client.get("/v1/metrics?window=1d")).json())["metrics"]
                truth_after = metrics_report(compute_metrics(statistics.total("v1", now[0], DAY)))
        finally:
            await server.close()
        truth = [truth_before, truth_after]
        assert truth_after["race"]["Black"]["n"] - truth_before["race"]["Black"]["n"] == 4
        assert attack([before[0][0], after], {}, truth) == []
        separately = [
            suppress_small_cells({"metrics": t}, statistics.layout)["metrics"] for t in truth
        ]
        assert attack(separately, {}, truth)

    asyncio.run(scenario())
