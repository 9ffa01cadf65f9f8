"""The prediction path: record a prediction while forwarding it to the model server.

For a POST to one of `sidecar.predictionPaths` it reads the subgroup values,
strips `equiguard_context`, forwards the request, reads the score from the
response, journals the prediction and queues it for the store. The answer
goes back as soon as the model has answered and the prediction is
journalled: the store's commit is never waited for.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from equiguard.contracts.rows import encode_groups
from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.sidecar.extract import BadPredictionRequest, read_request, read_score
from equiguard.sidecar.health import Health
from equiguard.sidecar.http1 import Headers, Request, Response, UpstreamClosed, UpstreamPool
from equiguard.sidecar.records import REQUEST_ID_RULE, Prediction, is_request_id
from equiguard.sidecar.statistics import LiveStatistics
from equiguard.sidecar.writer import RecordWriter

REQUEST_ID = b"x-request-id"
# The groups the sidecar recorded for a prediction, told to the model server so
# that a recalibrated revision calibrates for the group the statistics count
# (context attributes never reach it otherwise). Never taken from the client.
GROUPS = b"x-equiguard-groups"


@dataclass
class PredictionPath:
    config: SidecarConfig
    model: UpstreamPool
    writer: RecordWriter
    statistics: LiveStatistics
    health: Health
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self._upstream_host = self.config.upstream.split("://", 1)[1].encode()
        # The request headers the path reads, by lower-case name: the request id, the
        # content type and those that carry an attribute's value (by its key).
        self._header_keys: dict[bytes, tuple[str, ...]] = {}
        for attribute in self.config.attributes:
            if attribute.source == "header":
                name = attribute.key.lower().encode("latin-1")
                self._header_keys[name] = (*self._header_keys.get(name, ()), attribute.key)

    async def answer(self, request: Request) -> tuple[Response, list[tuple[bytes, bytes]]]:
        """The response to a prediction request and the headers to add to it."""
        started = self.clock()
        given_id, content_type, header_values = self._read_headers(request.headers)
        request_id = given_id or uuid.uuid4().hex.encode()
        if not is_request_id(request_id.decode("latin-1")):
            return Response.error(400, f"X-Request-Id must be {REQUEST_ID_RULE}"), []
        answered_with = [(REQUEST_ID, request_id)]
        try:
            body, values = read_request(
                bytes(request.body),
                header_values,
                content_type.split(b";", 1)[0].strip().lower() == b"application/json",
                self.config.attributes,
            )
        except BadPredictionRequest as error:
            self.health.rejected_requests.inc()
            return Response.error(400, str(error)), answered_with
        groups = self.statistics.groups_of(values)
        encoded_groups = encode_groups(groups)
        forwarded = Request(request.method, request.target, request.headers, body).encode(
            [
                (b"host", self._upstream_host),
                (REQUEST_ID, request_id),
                (GROUPS, encoded_groups.encode()),
            ]
        )
        try:
            response = await self.model.exchange(
                forwarded, head=False, timeout=self.config.upstream_timeout_seconds
            )
        except TimeoutError:
            self.health.upstream_errors.inc()
            return Response.error(504, "the model server did not answer in time"), answered_with
        except (OSError, UpstreamClosed):
            self.health.upstream_errors.inc()
            return Response.error(502, "the model server is unreachable"), answered_with
        self.health.predictions.inc()
        if response.status == 200:
            self._record(request_id.decode("ascii"), started, groups, encoded_groups, response.body)
        return response, answered_with

    def _read_headers(self, headers: Headers) -> tuple[bytes | None, bytes, dict[str, str]]:
        """The request id, the content type and the values of header-sourced attributes
        (the first of each, as a client library reads them), in one pass."""
        request_id: bytes | None = None
        content_type: bytes | None = None
        values: dict[str, str] = {}
        for name, value in headers:
            lowered = name.lower()
            if lowered == REQUEST_ID:
                request_id = value if request_id is None else request_id
            elif lowered == b"content-type":
                content_type = value if content_type is None else content_type
            else:
                for key in self._header_keys.get(lowered, ()):
                    if key not in values:
                        values[key] = value.decode("latin-1")
        return request_id, content_type or b"", values

    def _record(
        self,
        request_id: str,
        started: float,
        groups: dict[str, str],
        encoded_groups: str,
        payload: bytes,
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
            ),
            encoded_groups,
        )
