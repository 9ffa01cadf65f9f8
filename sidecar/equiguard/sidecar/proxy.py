"""The pass-through for every model path that is not a prediction (documentation,
the model server's own probes...): forwarded to the BentoML server as it came."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from aiohttp import web
from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.sidecar import predictions
from equiguard.sidecar.health import Health
from equiguard.sidecar.http1 import Response
from multidict import CIMultiDict

# Only the sidecar tells the model server a prediction's groups (predictions.py).
GROUPS = predictions.GROUPS.decode()
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
    """Response.error, the sidecar's one refusal, for aiohttp's handlers."""
    refusal = Response.error(status, reason)
    return web.Response(
        status=status, body=refusal.body, content_type="application/json", charset="utf-8"
    )


@dataclass
class Proxy:
    """Passes a request the sidecar does not answer itself to the model server unchanged
    (predictions take the front's own path: see front.py)."""

    config: SidecarConfig
    session: aiohttp.ClientSession
    health: Health

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path in self.config.prediction_paths:
            # The front matches every spelling of a prediction path it knows; one
            # that still reads as a prediction path here is refused, never
            # forwarded unrecorded.
            return error_response(400, "send predictions to a prediction path in plain form")
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED
        )
        try:
            async with self.session.request(
                request.method,
                self.config.upstream + request.path_qs,
                data=await request.read(),
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
        return web.Response(
            status=status,
            body=payload,
            headers=CIMultiDict(
                (k, v) for k, v in upstream_headers.items() if k.lower() not in _NOT_FORWARDED
            ),
        )
