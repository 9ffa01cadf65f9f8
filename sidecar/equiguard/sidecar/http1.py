"""Just enough HTTP/1.1 for the sidecar's front: messages, and kept-alive upstream connections.

Parsing is httptools' (the llhttp parser uvicorn uses); this module only
frames what it parses. Bodies are buffered whole: the sidecar reads every
prediction and its answer anyway, and caps request bodies.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import cast

import httptools

Headers = list[tuple[bytes, bytes]]

# Hop-by-hop headers (RFC 9110 section 7.6.1), and those the front recomputes.
NOT_FORWARDED = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"expect",
    )
)


@dataclass
class Request:
    method: bytes
    target: bytes  # path and query, as received
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (name in lower case)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def encode(self, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
        """The request as sent upstream: end-to-end headers, `extra`, and the body's length."""
        start = b"%s %s HTTP/1.1" % (self.method, self.target)
        return _message(start, self.headers, extra, self.body)


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes
    keep_alive: bool = True

    @classmethod
    def error(cls, status: int, reason: str) -> Response:
        """The sidecar's refusal of a request, on every path: {"error": reason} as JSON."""
        body = json.dumps({"error": reason}).encode()
        return cls(status, [(b"content-type", b"application/json; charset=utf-8")], body)

    def encode(self, extra: Sequence[tuple[bytes, bytes]] = (), close: bool = False) -> bytes:
        """The response as sent to the client."""
        start = _STATUS_LINES.get(self.status) or b"HTTP/1.1 %d " % self.status
        return _message(start, self.headers, [*extra, *_CLOSING] if close else extra, self.body)


def _message(
    start: bytes, headers: Headers, extra: Sequence[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """A message: its start line, the end-to-end headers not replaced by `extra`, `extra`,
    and the body with its length."""
    names = tuple(name for name, _ in extra)
    dropped = _DROPPED.get(names)
    if dropped is None:
        # Few sets of added headers recur (those of the prediction path, of an
        # answer): each set of names to drop is made once.
        dropped = NOT_FORWARDED | {name.lower() for name in names}
        if len(_DROPPED) < 64:
            _DROPPED[names] = dropped
    lines = [start]
    for name, value in headers:
        if name.lower() not in dropped:
            lines.append(name + b": " + value)
    for name, value in extra:
        lines.append(name + b": " + value)
    lines += (b"content-length: %d" % len(body), b"", body)
    return b"\r\n".join(lines)


def normal_path(target: bytes) -> bytes | None:
    """The path of a request target as a server routes it: percent-escapes decoded (as
    uvicorn does) and dot segments removed (as yarl does). None for a target that is
    not a URL."""
    try:
        path = bytes(httptools.parse_url(target).path or b"")
    except httptools.HttpParserInvalidURLError:
        return None
    segments: list[bytes] = []
    for segment in urllib.parse.unquote_to_bytes(path).split(b"/")[1:]:
        if segment == b"..":
            if segments:
                segments.pop()
        elif segment != b".":
            segments.append(segment)
    trailing = path.endswith((b"/.", b"/..")) and bool(segments)
    return b"/" + b"/".join(segments) + (b"/" if trailing else b"")


def origin_form(target: bytes, path: bytes) -> bytes:
    """`target` with its path replaced by `path`, as sent to a server (path and query)."""
    query = httptools.parse_url(target).query
    return path if not query else path + b"?" + bytes(query)


_CLOSING = ((b"connection", b"close"),)
_STATUS_LINES: dict[int, bytes] = {
    status: b"HTTP/1.1 %d %s" % (status, status.phrase.encode()) for status in HTTPStatus
}
_DROPPED: dict[tuple[bytes, ...], frozenset[bytes]] = {}


class UpstreamClosed(ConnectionError):
    """The upstream connection closed before a whole response arrived."""

    def __init__(self, answered_nothing: bool) -> None:
        super().__init__("the upstream closed the connection")
        self.answered_nothing = answered_nothing


class UpstreamConnection(asyncio.Protocol):
    """One kept-alive connection to the upstream; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._pending: asyncio.Future[Response] | None = None
        self._head = False
        self._headers: Headers = []
        self._body: list[bytes] = []
        self._started = False
        self._headers_done = False
        self._until_close = False

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def exchange(self, request: bytes, head: bool) -> asyncio.Future[Response]:
        assert self.transport is not None and self._pending is None
        self._pending = asyncio.get_running_loop().create_future()
        self._head = head
        self.transport.write(request)
        return self._pending

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(UpstreamClosed(answered_nothing=False))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._headers_done and self._until_close and self._pending is not None:
            self._finish(keep_alive=False)
            return
        self._fail(UpstreamClosed(answered_nothing=not self._started))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        # A body with neither a length nor chunks ends when the connection does.
        self._until_close = not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        )
        status = self._parser.get_status_code()
        if self._head or status in (204, 304):
            # No body follows, whatever Content-Length says; a fresh parser
            # reads the next response.
            self._finish(keep_alive=self._parser.should_keep_alive())
            self._parser = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._pending is not None:
            self._finish(keep_alive=self._parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        pending, self._pending = self._pending, None
        response = Response(
            self._parser.get_status_code(), self._headers, b"".join(self._body), keep_alive
        )
        self._headers, self._body = [], []
        self._started = self._headers_done = False
        if pending is not None and not pending.done():
            pending.set_result(response)
        if not keep_alive:
            self.close()

    def _fail(self, error: Exception) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_exception(error)


class UpstreamPool:
    """Kept-alive connections to one server, reused one exchange at a time; at most
    `max_connections` open at once (a new one opens only when none is idle)."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[UpstreamConnection]],
        max_idle: int,
        max_connections: int,
    ) -> None:
        self._connect = connect
        self._idle: list[UpstreamConnection] = []
        self._max_idle = max_idle
        self._slots = asyncio.Semaphore(max_connections)

    async def exchange(self, request: bytes, head: bool, timeout: float) -> Response:
        """Send a request and wait for the whole response, waiting for a free connection
        first (all within `timeout`). A reused connection that the server had closed
        before answering is replaced once (as aiohttp's client does). One coroutine, so
        that resuming it on the answer costs one frame."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._slots.locked():
            await asyncio.wait_for(self._slots.acquire(), timeout)
        else:
            await self._slots.acquire()  # free: no task to wait for it (the common case)
        try:
            while True:
                connection = self._take_idle() or await self._connect()
                pending = connection.exchange(request, head)
                timer = loop.call_at(deadline, _expire, pending)
                try:
                    response = await pending
                except UpstreamClosed as closed:
                    if connection.reused and closed.answered_nothing:
                        continue
                    raise
                except BaseException:
                    connection.close()  # a timed-out or cancelled exchange leaves it unusable
                    raise
                finally:
                    timer.cancel()
                if response.keep_alive and connection.open and len(self._idle) < self._max_idle:
                    connection.reused = True
                    self._idle.append(connection)
                else:
                    connection.close()
                return response
        finally:
            self._slots.release()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _take_idle(self) -> UpstreamConnection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.open:
                return connection
        return None


def _expire(pending: asyncio.Future[Response]) -> None:
    if not pending.done():
        pending.set_exception(TimeoutError())
