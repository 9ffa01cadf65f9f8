"""What keeps one operator's cost per evaluation flat as its fleet grows."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from equiguard.contracts import names
from equiguard.engine.stats import Statistics
from equiguard.kube import Kube, Transient
from equiguard.operator.evaluation import all_of
from equiguard.operator.gather import PodTarget, gather
from equiguard.operator.metrics import OperatorMetrics
from equiguard.operator.rhythm import next_evaluation, phase_of
from prometheus_client.registry import CollectorRegistry


class _Answer:
    status, reason = 200, "OK"

    def read(self) -> bytes:
        return json.dumps({"items": []}).encode()


class _RecordingClient:
    """Stands in for the client's ApiClient: answers every call with an empty list."""

    def param_serialize(self, method: str, path: str, **_: Any) -> tuple[Any, ...]:
        return method, path, {}, None, None

    def call_api(self, method: str, url: str, **_: Any) -> _Answer:
        return _Answer()


def test_the_api_client_counts_the_calls_it_sends_by_method() -> None:
    kube = Kube(_RecordingClient())  # type: ignore[arg-type]
    kube.list("v1", "Pod", "ns", {"app": "m"})
    kube.list("batch/v1", "Job", "ns", {"app": "m"})
    kube.get("v1", "Secret", "ns", "token")
    assert kube.requests_made() == {"GET": 3}


def test_the_operator_exports_its_api_calls_at_scrape_time() -> None:
    counts = {"GET": 5, "PATCH": 2}
    registry = CollectorRegistry()
    registry.register(OperatorMetrics(api_requests=lambda: counts))
    counts["GET"] = 7  # read when scraped, not when registered
    assert registry.get_sample_value("equiguard_api_requests_total", {"method": "GET"}) == 7
    assert registry.get_sample_value("equiguard_api_requests_total", {"method": "PATCH"}) == 2


def test_independent_steps_return_in_order_once_all_are_done() -> None:
    finished: list[str] = []

    async def step(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        finished.append(name)
        return name

    assert asyncio.run(all_of(step("slow", 0.02), step("fast", 0))) == ["slow", "fast"]
    assert finished == ["fast", "slow"]


def test_a_failed_step_is_raised_only_after_the_others_have_finished() -> None:
    finished: list[str] = []

    async def fails() -> None:
        raise Transient("503: unavailable")

    async def slow() -> None:
        await asyncio.sleep(0.02)
        finished.append("slow")

    with pytest.raises(Transient, match="503"):
        asyncio.run(all_of(fails(), slow()))
    assert finished == ["slow"]


def _statistics_payload() -> dict[str, Any]:
    return Statistics.empty([("race", "a"), ("race", "b")], 0.3).to_dict()


@pytest.mark.parametrize("shared", [True, False])
def test_statistics_are_read_through_the_operators_session_which_stays_open(
    shared: bool,
) -> None:
    # The sidecar's port is fixed: a loopback address of its own avoids any other server.
    address = f"127.91.{random.randrange(1, 255)}.{random.randrange(1, 255)}"
    served: list[str] = []

    async def stats(request: web.Request) -> web.Response:
        served.append(request.headers["Authorization"])
        return web.json_response(_statistics_payload())

    async def scenario() -> tuple[int, bool]:
        app = web.Application()
        app.router.add_get("/v1/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, address, names.SIDECAR_PORT).start()
        session = aiohttp.ClientSession() if shared else None
        try:
            gathered = await gather(
                [PodTarget("pod-0", address)], [3600.0, 86400.0], "m:v1", "t", 5.0, session
            )
            return gathered.pods, session is not None and not session.closed
        finally:
            if session is not None:
                await session.close()
            await runner.cleanup()

    pods, still_open = asyncio.run(scenario())
    assert pods == 1
    assert served == ["Bearer t", "Bearer t"]
    assert still_open == shared


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_fleet_created_at_once_spreads_its_evaluations_over_the_interval() -> None:
    interval = 60.0
    phases = sorted(phase_of(f"uid-{i}", interval) for i in range(600))
    # Six hundred models in one second: after one evaluation each, every tenth
    # of the interval holds about a tenth of the fleet.
    slots = [
        (next_evaluation(T0, interval, phase).timestamp() % interval) // (interval / 10)
        for phase in phases
    ]
    assert all(40 <= slots.count(slot) <= 80 for slot in range(10))


@pytest.mark.parametrize("phase", [0.0, 7.5, 29.0, 31.0, 59.9])
def test_moving_onto_the_phase_changes_one_interval_by_at_most_half(phase: float) -> None:
    first = next_evaluation(T0, 60.0, phase)
    assert timedelta(seconds=30) <= first - T0 <= timedelta(seconds=90)
    assert first.timestamp() % 60.0 == pytest.approx(phase)


def test_on_its_phase_a_model_is_evaluated_exactly_an_interval_apart() -> None:
    phase = phase_of("uid-7", 60.0)
    on_phase = next_evaluation(T0, 60.0, phase)
    late = on_phase + timedelta(seconds=4)  # the timer's tick came 4 s after the slot
    assert next_evaluation(on_phase, 60.0, phase) - on_phase == timedelta(seconds=60)
    # Lateness of one tick is not carried into the next: the model stays on its phase.
    assert next_evaluation(late, 60.0, phase) == on_phase + timedelta(seconds=60)


def test_a_models_phase_survives_a_restart_and_differs_from_its_neighbours() -> None:
    assert phase_of("uid-1", 60.0) == phase_of("uid-1", 60.0)
    assert phase_of("uid-1", 60.0) != phase_of("uid-2", 60.0)
    assert 0 <= phase_of("uid-1", 60.0) < 60.0
