"""The sidecar's listening port: predictions on a lean path, everything else to aiohttp.

A proxy on the request path of clinical traffic must add little latency. The
prediction path is driven by asyncio protocol callbacks and httptools, with
kept-alive connections to the model server: in bench/sidecar_latency.py it
costs about a quarter of the CPU per request of an aiohttp server and client
doing the same, and aiohttp's part alone added more than a millisecond per
request. Every other request (the sidecar's own endpoints, other model paths)
goes, in full, to the aiohttp application listening on a private Unix socket,
which answers or proxies it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools
from equiguard.sidecar.http1 import Request, Response, UpstreamClosed, UpstreamPool
from equiguard.sidecar.predictions import PredictionPath

log = logging.getLogger(__name__)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Front:
    predictions: PredictionPath
    application: UpstreamPool  # the aiohttp application on its Unix socket
    prediction_paths: frozenset[bytes]
    max_body_bytes: int
    timeout_seconds: float  # for the application, which has its own for the model server
    connections: set[FrontConnection] = field(default_factory=set, init=False)

    def connection(self) -> FrontConnection:
        return FrontConnection(self)

    async def answer(self, request: Request) -> tuple[Response, list[tuple[bytes, bytes]]]:
        if request.method == b"POST" and _path(request.target) in self.prediction_paths:
            return await self.predictions.answer(request)
        try:
            response = await self.application.exchange(
                request.encode(), head=request.method == b"HEAD", timeout=self.timeout_seconds
            )
        except TimeoutError:
            return Response.error(504, "the sidecar did not answer in time"), []
        except (OSError, UpstreamClosed):
            return Response.error(502, "the sidecar's API is unavailable"), []
        return response, []

    async def drain(self, timeout: float) -> None:
        """Let requests in progress finish (up to `timeout`), then close every connection."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(c.busy for c in self.connections):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close()


def _path(target: bytes) -> bytes:
    try:
        return bytes(httptools.parse_url(target).path or b"")
    except httptools.HttpParserInvalidURLError:
        return b""


class FrontConnection(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, answered in order."""

    def __init__(self, front: Front) -> None:
        self._front = front
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[tuple[Request, bool]] = deque()
        self._serving: asyncio.Task[None] | None = None
        self._url = bytearray()
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self._refused: Response | None = None

    @property
    def busy(self) -> bool:
        return self._serving is not None and not self._serving.done()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self._front.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._front.connections.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not proxied")
        except httptools.HttpParserError:
            self._refuse(400, "the request is not valid HTTP/1.1")

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._body = bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        declared = dict((name.lower(), value) for name, value in self._headers)
        length = declared.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self._front.max_body_bytes:
            self._refuse(413, f"the body exceeds {self._front.max_body_bytes} bytes")
        elif declared.get(b"expect", b"").lower() == b"100-continue" and self._transport:
            self._transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._refused is not None:
            return
        if len(self._body) + len(body) > self._front.max_body_bytes:
            self._refuse(413, f"the body exceeds {self._front.max_body_bytes} bytes")
            return
        self._body += body

    def on_message_complete(self) -> None:
        if self._refused is not None:
            return
        request = Request(
            self._parser.get_method(), bytes(self._url), self._headers, bytes(self._body)
        )
        self._queue.append((request, self._parser.should_keep_alive()))
        if not self.busy:
            self._serving = asyncio.get_running_loop().create_task(self._serve())

    # answering

    async def _serve(self) -> None:
        while self._queue:
            request, keep_alive = self._queue.popleft()
            try:
                response, extra = await self._front.answer(request)
            except Exception as error:
                # The connection must get an answer whatever went wrong; the
                # type only, since a message could quote the request.
                log.error("answering a request failed: %s", type(error).__name__)
                response, extra, keep_alive = Response.error(500, "internal error"), [], False
            if self._transport is None:
                return  # the client has gone
            self._transport.write(response.encode(extra, close=not keep_alive))
            if not keep_alive:
                self._transport.close()
                return
        self._send_refusal()

    def _refuse(self, status: int, reason: str) -> None:
        """Refuse a request that cannot be read further; the connection then closes, after
        the answer to a request in progress."""
        self._refused = Response.error(status, reason)
        self._queue.clear()
        if not self.busy:
            self._send_refusal()

    def _send_refusal(self) -> None:
        if self._transport is not None and self._refused is not None:
            self._transport.write(self._refused.encode(close=True))
            self._transport.close()
