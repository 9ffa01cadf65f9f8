"""Fuzzing the sidecar's HTTP front and JSON endpoints with raw bytes.

Hypothesis writes requests (well-formed ones with generated JSON, the same
bytes mutated, and bytes at random) and sends each on its own connection to a
real sidecar in front of a real `bentoml serve` on loopback. Every answer must
be valid HTTP with a status below 500, the process must keep running, and in
the end the store holds exactly the predictions, records and outcomes the
sidecar acknowledged. Bounded for CI by the number of examples (EXAMPLES).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import pytest
from equiguard.cohort import generate_cohort, prediction_requests
from helpers.bento import LOOPBACK, BentoServer
from helpers.sidecar import TOKEN, SidecarProcess, running_sidecar, sidecar_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 300
# Short, so that a request the fuzzer leaves incomplete is closed quickly.
TIMEOUTS = {"headerTimeout": "1s", "idleTimeout": "1s"}
ANSWER_SECONDS = 20.0
IDS = [f"fz-{i}" for i in range(12)]
PATHS = [
    "/predict",
    "/%70redict",
    "/./predict",
    "/v1/outcomes",
    "/v1/records",
    "/v1/stats",
    "/v1/metrics?window=1h",
    "/v1/slo",
    "/v1/nothing",
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
]


@dataclass
class Ledger:
    """What the sidecar acknowledged, by request id."""

    recorded: set[str] = field(default_factory=set)
    labelled: set[str] = field(default_factory=set)


@dataclass
class Fuzzed:
    sidecar: SidecarProcess
    folder: Path
    ledger: Ledger


@pytest.fixture(scope="module")
def fuzzed(
    readmission_v1: BentoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzzed]:
    folder = tmp_path_factory.mktemp("fuzzed-sidecar")
    config = sidecar_config(readmission_v1.url, folder)
    config["sidecar"] |= TIMEOUTS
    with running_sidecar(config, folder) as process:
        yield Fuzzed(process, folder, Ledger())


FEATURES = prediction_requests(generate_cohort(1, 3))[0].body
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
labels = st.sampled_from([0, 1, True, False, 2, "1", None, 0.5])
outcome_items = (
    st.fixed_dictionaries(
        {"request_id": st.sampled_from(IDS), "label": labels},
        optional={"race": st.sampled_from(["White", "Black", "x", 3]), "other": documents},
    )
    | documents
)
record_items = (
    st.fixed_dictionaries(
        {
            "request_id": st.sampled_from(IDS),
            "score": st.floats(0, 1) | st.sampled_from([-1, 2, "0.5", None, True]),
        },
        optional={
            "label": labels,
            "revision": st.sampled_from(["v1", "v2", ""]),
            "time": st.integers(0, 2_000_000_000) | st.text(max_size=25),
            "sex": st.sampled_from(["female", "male", 1.5]),
        },
    )
    | documents
)
contexts = st.dictionaries(
    st.sampled_from(["race", "sex", "payer", "adi_quintile", "x"]), scalars, max_size=4
)
predictions = st.builds(
    lambda overrides, context: {**FEATURES, **overrides, "equiguard_context": context},
    st.dictionaries(st.sampled_from([*FEATURES, "extra"]), scalars, max_size=2),
    contexts | documents,
)
bodies = {
    "/v1/outcomes": st.fixed_dictionaries({"outcomes": st.lists(outcome_items, max_size=6)}),
    "/v1/records": st.fixed_dictionaries({"records": st.lists(record_items, max_size=6)}),
}


@dataclass(frozen=True)
class Message:
    data: bytes
    as_written: bool  # read by the sidecar as the fuzzer wrote it
    document: Any = None


@st.composite
def structured(draw: st.DrawFn, may_write: bool = True) -> Message:
    method = draw(st.sampled_from(["POST", "POST", "GET", "PUT", "HEAD", "DELETE", "OPTIONS"]))
    path = draw(st.sampled_from(PATHS))
    plain = path.split("?")[0]
    document: Any = None
    if method == "POST":
        strategy = bodies.get(plain, predictions if "redict" in plain else documents)
        document = draw(strategy | documents)
        body = json.dumps(document).encode()
    else:
        body = b""
    headers = [("Host", "sidecar"), ("Connection", "close")]
    if may_write and draw(st.booleans()):
        headers.append(("Authorization", f"Bearer {TOKEN}"))
    headers.append(("Content-Type", draw(st.sampled_from(["application/json", "text/plain"]))))
    if draw(st.booleans()):
        headers.append(("X-Request-Id", draw(st.sampled_from([*IDS, "", "bad id", "x" * 200]))))
    extra = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"))
    for name in draw(st.lists(extra.filter(bool), max_size=3)):
        headers.append((name, draw(st.text(st.characters(min_codepoint=32, max_codepoint=126)))))
    chunked = bool(body) and draw(st.booleans())
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        headers.append(("Content-Length", str(len(body))))
        framed = body
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    data = f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + framed
    return Message(data, True, document)


@st.composite
def mutated(draw: st.DrawFn) -> Message:
    # Without the token: what a mutated batch did could not be accounted for.
    data = bytearray(draw(structured(may_write=False)).data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return Message(bytes(data), False)


messages = structured() | mutated() | st.binary(max_size=400).map(lambda b: Message(b, False))


class Answers:
    """The responses in a stream of bytes, read with the same parser as the front's."""

    def __init__(self, data: bytes) -> None:
        self.responses: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self._headers: dict[bytes, bytes] = {}
        self._body = bytearray()
        self._parser = httptools.HttpResponseParser(self)
        self._parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        self.responses.append((status, self._headers, bytes(self._body)))
        self._headers, self._body = {}, bytearray()


def send(port: int, data: bytes) -> bytes:
    with socket.create_connection((LOOPBACK, port), timeout=ANSWER_SECONDS) as sock:
        # Refused before all was sent: the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received = bytearray()
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                return bytes(received)
            received += chunk
    return bytes(received)


def account(
    ledger: Ledger, message: Message, status: int, headers: dict[bytes, bytes], body: bytes
) -> None:
    """Add what the sidecar acknowledged in this answer to the ledger."""
    if status != 200:
        return
    try:
        answer = json.loads(body)
    except ValueError:
        return
    if not isinstance(answer, dict):
        return
    risk = answer.get("risk")
    if b"x-request-id" in headers and isinstance(risk, float) and 0 <= risk <= 1:
        ledger.recorded.add(headers[b"x-request-id"].decode())  # a prediction, answered
        return
    target = message.data.split(b" ", 2)[1]
    key = {b"/v1/outcomes": "outcomes", b"/v1/records": "records"}.get(target)
    if not message.as_written or key is None:
        return
    items = message.document[key]
    refused = {entry["index"] for entry in answer["rejected"]}
    for index, item in enumerate(items):
        if index in refused:
            continue
        if key == "records":
            ledger.recorded.add(item["request_id"])
            if item.get("label") is not None:
                ledger.labelled.add(item["request_id"])
        else:
            ledger.labelled.add(item["request_id"])


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(message=messages)
def test_every_answer_is_valid_http_below_500_and_the_sidecar_survives(
    fuzzed: Fuzzed, message: Message
) -> None:
    data = send(fuzzed.sidecar.port, message.data)
    assert fuzzed.sidecar.process.poll() is None, fuzzed.sidecar.log_text()[-2000:]
    try:
        answers = Answers(data)
    except httptools.HttpParserError as error:
        raise AssertionError(f"not valid HTTP: {data[:300]!r}") from error
    if message.as_written:
        assert answers.responses, f"no answer to {message.data[:300]!r}"
    for status, headers, body in answers.responses:
        assert 100 <= status < 500, (status, body[:300], message.data[:300])
        account(fuzzed.ledger, message, status, headers, body)


def test_the_store_holds_exactly_what_the_fuzzed_sidecar_acknowledged(fuzzed: Fuzzed) -> None:
    """Runs after the fuzzing (pytest keeps the order of a module's tests)."""
    ledger = fuzzed.ledger
    assert ledger.recorded, "the fuzzer never made a prediction the model answered"
    fuzzed.sidecar.stop()  # commits what is queued
    with sqlite3.connect(fuzzed.folder / "predictions.db") as db:
        rows = dict(db.execute("SELECT request_id, label FROM predictions").fetchall())
    assert set(rows) == ledger.recorded
    assert {request_id for request_id, label in rows.items() if label is not None} == (
        ledger.labelled
    )
