"""The recording reverse proxy: forwards every other path to the BentoML server.

For a prediction (a POST to one of `sidecar.predictionPaths`) it reads the
subgroup values, strips `equiguard_context`, forwards the request, reads the
score from the response and queues the prediction for the store. Queuing
never waits: the response goes back as soon as the model has answered.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from equiguard.sidecar.config import SidecarConfig
from equiguard.sidecar.extract import BadPredictionRequest, read_request, read_score
from equiguard.sidecar.health import Health
from equiguard.sidecar.records import Prediction
from equiguard.sidecar.statistics import LiveStatistics
from equiguard.sidecar.store import encode_groups
from equiguard.sidecar.writer import RecordWriter
from multidict import CIMultiDict

REQUEST_ID = "X-Request-Id"
# The groups the sidecar recorded for a prediction, told to the model server so
# that a recalibrated revision calibrates for the group the statistics count
# (context attributes never reach it otherwise). Never taken from the client.
GROUPS = "X-Equiguard-Groups"
_VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the proxy recomputes.
_NOT_FORWARDED = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Encoding",
        GROUPS,
    )
)


def error_response(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@dataclass
class Proxy:
    config: SidecarConfig
    session: aiohttp.ClientSession
    writer: RecordWriter
    statistics: LiveStatistics
    health: Health
    clock: Callable[[], float] = time.time

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = self.clock()
        request_id = request.headers.get(REQUEST_ID) or uuid.uuid4().hex
        if not _VALID_REQUEST_ID.fullmatch(request_id):
            return error_response(400, f"{REQUEST_ID} must be 1 to 128 visible ASCII characters")
        body = await request.read()
        is_prediction = request.method == "POST" and request.path in self.config.prediction_paths
        values: dict[str, object] = {}
        if is_prediction:
            try:
                body, values = read_request(
                    body,
                    request.headers,
                    request.content_type == "application/json",
                    self.config.attributes,
                )
            except BadPredictionRequest as error:
                self.health.rejected_requests.inc()
                return error_response(400, str(error))
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED
        )
        headers[REQUEST_ID] = request_id
        groups = self.statistics.groups_of(values) if is_prediction else {}
        if is_prediction:
            headers[GROUPS] = encode_groups(groups)
        try:
            async with self.session.request(
                request.method,
                self.config.upstream + request.path_qs,
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                status, upstream_headers = upstream.status, upstream.headers
        except (aiohttp.ClientError, TimeoutError) as error:
            self.health.upstream_errors.inc()
            if isinstance(error, TimeoutError):
                return error_response(504, "the model server did not answer in time")
            return error_response(502, "the model server is unreachable")
        response = web.Response(
            status=status,
            body=payload,
            headers=CIMultiDict(
                (k, v) for k, v in upstream_headers.items() if k.lower() not in _NOT_FORWARDED
            ),
        )
        response.headers[REQUEST_ID] = request_id
        if is_prediction:
            self.health.predictions.inc()
            if status == 200:
                self._record(request_id, started, groups, payload)
        return response

    def _record(
        self, request_id: str, started: float, groups: dict[str, str], payload: bytes
    ) -> None:
        score = read_score(payload, self.config.score_path)
        if score is None or not 0.0 <= score <= 1.0:
            # Counted, not recorded: the statistics need a probability.
            self.health.unscored_predictions.inc()
            return
        self.writer.record_prediction(
            Prediction(
                request_id,
                started,
                self.config.revision,
                groups,
                score,
                score >= self.statistics.threshold,
            )
        )
