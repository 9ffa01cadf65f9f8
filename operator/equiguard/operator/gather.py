"""Reading the statistics of every ready pod of the serving revision.

Each pod's sidecar serves its own share at GET /v1/stats (`contracts.stats_exchange`:
the engine's `equiguard.stats/v1` format, bearer token required); the shares
are summed. A pod that does not answer makes the whole sum incomplete, so the
result is "unavailable" rather than a verdict on part of the data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from equiguard.contracts import stats_exchange
from equiguard.engine.stats import Statistics, sum_statistics


@dataclass(frozen=True)
class PodTarget:
    name: str
    ip: str


@dataclass(frozen=True)
class Gathered:
    """The summed statistics per window, or why there are none."""

    statistics: dict[float, Statistics]
    pods: int
    problem: str = ""  # a sentence when statistics is empty


async def _fetch(
    session: aiohttp.ClientSession,
    pod: PodTarget,
    span: float,
    revision: str,
    token: str,
    timeout: aiohttp.ClientTimeout,
) -> Statistics:
    params = stats_exchange.query(span, revision)
    headers = {"Authorization": f"Bearer {token}"}
    url = stats_exchange.url(pod.ip)
    async with session.get(url, params=params, headers=headers, timeout=timeout) as response:
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=response.reason or ""
            )
        return stats_exchange.read_answer(await response.json())


async def gather(
    pods: Sequence[PodTarget],
    spans: Sequence[float],
    revision: str,
    token: str,
    timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> Gathered:
    """Sums each window's statistics over all pods; any failure makes the whole unavailable.

    With `session` (the operator's, kept open), connections to the sidecars are
    reused across evaluations; without, one is opened for this call alone.
    """
    if not pods:
        return Gathered({}, 0, "no ready pod serves the revision")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with contextlib.AsyncExitStack() as scope:
        if session is None:
            session = await scope.enter_async_context(aiohttp.ClientSession())
        tasks = {
            (pod, span): asyncio.ensure_future(
                _fetch(session, pod, span, revision, token, client_timeout)
            )
            for pod in pods
            for span in spans
        }
        await asyncio.wait(tasks.values())
    failed = sorted({pod.name for (pod, _), task in tasks.items() if task.exception() is not None})
    if failed:
        first = next(task.exception() for task in tasks.values() if task.exception() is not None)
        # The pod's name only: the error text of a proxy might echo a request.
        return Gathered(
            {},
            0,
            f"statistics of {len(failed)} of {len(pods)} pods could not be "
            f"read (first: {failed[0]}, {type(first).__name__})",
        )
    statistics = {
        span: sum_statistics(tasks[(pod, span)].result() for pod in pods) for span in spans
    }
    return Gathered(statistics, len(pods))
