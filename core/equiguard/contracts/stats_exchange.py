"""The statistics exchange contract: GET /v1/stats between the operator and each sidecar.

The operator asks each pod for a window of one revision's statistics
(`query`); the sidecar reads the revision asked for (`requested_revision`;
the window is a duration, as every endpoint of the sidecar reads it) and
answers with raw counts in the engine's `equiguard.stats/v1` format
(`answer`), which the operator reads back (`read_answer`) and sums over pods.
The bearer token is required: raw counts never leave the pod without it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from equiguard.contracts import names
from equiguard.engine.stats import Statistics

PATH = "/v1/stats"
WINDOW_PARAM, REVISION_PARAM = "window", "revision"
REVISION_HEADER = "X-Equiguard-Revision"
WINDOW_HEADER = "X-Equiguard-Window-Seconds"


def window_text(seconds: float) -> str:
    """A span as the `window` query writes it: whole seconds, rounded up."""
    return f"{math.ceil(seconds)}s"


def url(pod_ip: str) -> str:
    return f"http://{pod_ip}:{names.SIDECAR_PORT}{PATH}"


def query(window_seconds: float, revision: str) -> dict[str, str]:
    """The question the operator asks each pod."""
    return {WINDOW_PARAM: window_text(window_seconds), REVISION_PARAM: revision}


def requested_revision(params: Mapping[str, str], serving: str) -> str:
    """The revision asked for; the one this pod serves when none is named."""
    return params.get(REVISION_PARAM, serving)


def answer(
    statistics: Statistics, revision: str, window_seconds: float
) -> tuple[dict[str, object], dict[str, str]]:
    """The sidecar's answer: the body and the headers that say what it covers."""
    headers = {REVISION_HEADER: revision, WINDOW_HEADER: str(window_seconds)}
    return statistics.to_dict(), headers


def read_answer(body: Mapping[str, object]) -> Statistics:
    """The statistics in an answer; ValueError names a bad field."""
    return Statistics.from_dict(body)
