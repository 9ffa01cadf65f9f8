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
from equiguard.sidecar.http1 import (
    Request,
    Response,
    UpstreamClosed,
    UpstreamPool,
    normal_path,
    origin_form,
)
from equiguard.sidecar.predictions import PredictionPath

log = logging.getLogger(__name__)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A request's start line and header fields together, and how many fields it may
# have (as nginx's and gunicorn's defaults, about): more gets 431.
MAX_HEAD_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100
# Bytes of a message after its head beyond the body limit: chunk framing and
# trailer fields, which are read and dropped.
FRAMING_ALLOWANCE_BYTES = 64 * 1024
VERSIONS = frozenset({"1.0", "1.1"})


@dataclass
class Front:
    predictions: PredictionPath
    application: UpstreamPool  # the aiohttp application on its Unix socket
    prediction_paths: frozenset[bytes]
    max_body_bytes: int
    timeout_seconds: float  # for the application, which has its own for the model server
    header_timeout_seconds: float
    idle_timeout_seconds: float
    connections: set[FrontConnection] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        # Prediction paths a server routes as they are spelled: a request target
        # equal to one of them is that prediction path, with nothing to normalize.
        self._plain_paths = frozenset(p for p in self.prediction_paths if normal_path(p) == p)

    def connection(self) -> FrontConnection:
        return FrontConnection(self)

    async def answer(self, request: Request) -> tuple[Response, list[tuple[bytes, bytes]]]:
        if request.method == b"POST":
            if request.target in self._plain_paths:
                return await self.predictions.answer(request)
            # Matched as the model server will route it, so that no spelling of a
            # prediction path (/%70redict, /./predict) escapes recording.
            path = normal_path(request.target)
            if path in self.prediction_paths:
                assert path is not None
                request.target = origin_form(request.target, path)
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
        # Bounds on what a client may make the sidecar hold (see MAX_HEAD_BYTES).
        self._in_head = True  # reading a request's head (or waiting for the next)
        self._head_bytes = 0
        self._after_head_bytes = 0
        # What the client must send by when (see _expect); one timer checks it.
        self._deadline: float | None = None
        self._answer_late = False
        self._timer: asyncio.TimerHandle | None = None
        # The head's fields that the front acts on, as they arrive.
        self._declared_length = b"0"
        self._expects_continue = False

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
        self._expect(self._front.header_timeout_seconds, True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._front.connections.discard(self)
        self._expect(None, False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        try:
            while data and self._refused is None:
                if self._in_head:
                    # Fed no further than the head may reach: the parser buffers a
                    # field until it ends, so a huge one must be cut off here.
                    room = MAX_HEAD_BYTES - self._head_bytes
                    if room <= 0:
                        self._refuse(431, f"the request's head exceeds {MAX_HEAD_BYTES} bytes")
                        return
                    part, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
                    self._head_bytes += len(part)
                else:
                    part, data = data, b""
                    self._after_head_bytes += len(part)
                    limit = self._front.max_body_bytes + FRAMING_ALLOWANCE_BYTES
                    if self._after_head_bytes > limit:
                        self._refuse(413, f"the body exceeds {self._front.max_body_bytes} bytes")
                        return
                    self._expect(self._front.idle_timeout_seconds, True)
                self._parser.feed_data(part)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not proxied")
        except httptools.HttpParserError:
            self._refuse(400, "the request is not valid HTTP/1.1")

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url.clear()
        self._headers = []
        self._body = bytearray()
        self._declared_length, self._expects_continue = b"0", False
        self._in_head = True
        self._expect(self._front.header_timeout_seconds, True)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head or self._refused is not None:
            return  # a trailer field of a chunked body never acts as a header
        if len(self._headers) >= MAX_HEADER_FIELDS:
            self._refuse(431, f"the request has more than {MAX_HEADER_FIELDS} header fields")
            return
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self._declared_length = value
        elif lowered == b"expect":
            self._expects_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._after_head_bytes = 0
        if self._refused is not None:
            return
        self._expect(self._front.idle_timeout_seconds, True)
        if self._parser.get_http_version() not in VERSIONS:
            self._refuse(400, "the sidecar speaks HTTP/1.1 (and answers HTTP/1.0)")
            return
        length = self._declared_length
        if length.isdigit() and int(length) > self._front.max_body_bytes:
            self._refuse(413, f"the body exceeds {self._front.max_body_bytes} bytes")
        elif self._expects_continue and self._transport:
            self._transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._refused is not None:
            return
        if len(self._body) + len(body) > self._front.max_body_bytes:
            self._refuse(413, f"the body exceeds {self._front.max_body_bytes} bytes")
            return
        self._body += body

    def on_message_complete(self) -> None:
        self._in_head = True  # what follows is the next request's head
        if self._refused is not None:
            return
        self._expect(None, False)  # nothing more is awaited from the client meanwhile
        request = Request(
            self._parser.get_method(), bytes(self._url), self._headers, bytes(self._body)
        )
        # An HTTP/1.0 client gets its answer and the connection closes.
        keep_alive = self._parser.should_keep_alive() and self._parser.get_http_version() == "1.1"
        self._queue.append((request, keep_alive))
        if not self.busy:
            self._serving = asyncio.get_running_loop().create_task(self._serve())

    # timeouts

    def _expect(self, seconds: float | None, answer: bool) -> None:
        """Close the connection unless the client sends more within `seconds` (None: no
        limit); with `answer`, a request cut short gets 408 first."""
        if seconds is None or self._transport is None:
            self._deadline = None
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._deadline, self._answer_late = deadline, answer
        # The deadline moves several times a request; the timer is moved only when
        # it would fire too late, and otherwise checks the deadline when it fires.
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None or self._transport is None:
            return
        loop, deadline = asyncio.get_running_loop(), self._deadline
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_deadline)
            return
        self._deadline = None
        self._expired(self._answer_late)

    def _expired(self, answer: bool) -> None:
        if answer and (self._url or self._headers or self._head_bytes or not self._in_head):
            self._refuse(408, "the request did not arrive in time")
        elif not self.busy:
            self.close()

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
        if self._refused is None and self._deadline is None:
            self._expect(self._front.idle_timeout_seconds, False)  # kept alive, now idle
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
