"""Reading the statistics of every ready pod of the serving revision.

Each pod's sidecar serves its own share at GET /v1/stats (`contracts.stats_exchange`:
the engine's `equiguard.stats/v1` format, bearer token required) and, for the
early warning, its score statistics at GET /v1/scores (`contracts.scores_exchange`,
the same query); the shares are summed. A pod that does not answer makes the
whole sum incomplete, so the result is "unavailable" rather than a verdict on
part of the data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp
from equiguard.contracts import scores_exchange, stats_exchange
from equiguard.engine.scores import ScoreStatistics, sum_scores
from equiguard.engine.stats import Statistics, sum_statistics

Shares = TypeVar("Shares", Statistics, ScoreStatistics)


@dataclass(frozen=True)
class PodTarget:
    name: str
    ip: str


@dataclass(frozen=True)
class Gathered(Generic[Shares]):
    """The summed statistics per window, or why there are none."""

    statistics: dict[float, Shares]
    pods: int
    problem: str = ""  # a sentence when statistics is empty


@dataclass(frozen=True)
class _Exchange(Generic[Shares]):
    url: Callable[[str], str]
    read: Callable[[Mapping[str, object]], Shares]
    total: Callable[[Sequence[Shares]], Shares]


_STATS = _Exchange(stats_exchange.url, stats_exchange.read_answer, sum_statistics)
_SCORES = _Exchange(scores_exchange.url, scores_exchange.read_answer, sum_scores)


async def _fetch(
    session: aiohttp.ClientSession,
    exchange: _Exchange[Shares],
    pod: PodTarget,
    span: float,
    revision: str,
    token: str,
    timeout: aiohttp.ClientTimeout,
) -> Shares:
    params = stats_exchange.query(span, revision)
    headers = {"Authorization": f"Bearer {token}"}
    url = exchange.url(pod.ip)
    async with session.get(url, params=params, headers=headers, timeout=timeout) as response:
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=response.reason or ""
            )
        return exchange.read(await response.json())


async def gather(
    pods: Sequence[PodTarget],
    spans: Sequence[float],
    revision: str,
    token: str,
    timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> Gathered[Statistics]:
    """Sums each window's statistics over all pods; any failure makes the whole unavailable.

    With `session` (the operator's, kept open), connections to the sidecars are
    reused across evaluations; without, one is opened for this call alone.
    """
    return await _gather(_STATS, pods, spans, revision, token, timeout, session)


async def gather_scores(
    pods: Sequence[PodTarget],
    spans: Sequence[float],
    revision: str,
    token: str,
    timeout: float = 10.0,
    session: aiohttp.ClientSession | None = None,
) -> Gathered[ScoreStatistics]:
    """Sums each window's score statistics (GET /v1/scores) over all pods, the same way."""
    return await _gather(_SCORES, pods, spans, revision, token, timeout, session)


async def _gather(
    exchange: _Exchange[Shares],
    pods: Sequence[PodTarget],
    spans: Sequence[float],
    revision: str,
    token: str,
    timeout: float,
    session: aiohttp.ClientSession | None,
) -> Gathered[Shares]:
    if not pods:
        return Gathered({}, 0, "no ready pod serves the revision")
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with contextlib.AsyncExitStack() as scope:
        if session is None:
            session = await scope.enter_async_context(aiohttp.ClientSession())
        tasks = {
            (pod, span): asyncio.ensure_future(
                _fetch(session, exchange, pod, span, revision, token, client_timeout)
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
        span: exchange.total([tasks[(pod, span)].result() for pod in pods]) for span in spans
    }
    return Gathered(statistics, len(pods))
