"""The score exchange contract: GET /v1/scores between the operator and each sidecar.

The early warning reads scores before outcomes arrive. The operator asks each
pod for a window of one revision's score statistics, exactly as it asks for
its labelled statistics (`stats_exchange`: the same query, revision rule and
headers); the sidecar answers in the engine's `equiguard.scores/v1` format
(`engine.scores.ScoreStatistics`), which the operator reads back and sums
over pods. The bearer token is required: raw counts never leave the pod
without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from equiguard.contracts import names
from equiguard.contracts.stats_exchange import (
    REVISION_HEADER,
    WINDOW_HEADER,
    query,
    requested_revision,
)
from equiguard.engine.scores import ScoreStatistics

PATH = "/v1/scores"
__all__ = ["PATH", "answer", "query", "read_answer", "requested_revision", "url"]


def url(pod_ip: str) -> str:
    return f"http://{pod_ip}:{names.SIDECAR_PORT}{PATH}"


def answer(
    scores: ScoreStatistics, revision: str, window_seconds: float
) -> tuple[dict[str, object], dict[str, str]]:
    """The sidecar's answer: the body and the headers that say what it covers."""
    headers = {REVISION_HEADER: revision, WINDOW_HEADER: str(window_seconds)}
    return scores.to_dict(), headers


def read_answer(body: Mapping[str, object]) -> ScoreStatistics:
    """The score statistics in an answer; ValueError names a bad field."""
    return ScoreStatistics.from_dict(body)
