"""What an outside probe of the sidecar found, kept fixed: a real sidecar in front of a
real `bentoml serve`, spoken to in raw HTTP/1.1 as an attacker or a careless client
would."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from equiguard.cohort import generate_cohort, prediction_requests
from helpers.bento import LOOPBACK, BentoServer
from helpers.sidecar import TOKEN, SidecarProcess, running_sidecar, sidecar_config, start_sidecar

# Longer than any answer takes on a loaded machine, far shorter than the hangs
# the probe found (35 s for an empty batch).
ANSWER_SECONDS = 20.0


def exchange(port: int, message: bytes, timeout: float = ANSWER_SECONDS) -> bytes:
    """Send `message` on a new connection and read until the sidecar closes it."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(message)
        return read_to_end(sock)


def read_to_end(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    return bytes(received)


def request(
    method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: sidecar", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_and_json(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:  # the model server's own answers need not be JSON
        return status, body


WRITE = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def post_json(port: int, path: str, document: object) -> tuple[int, Any]:
    body = json.dumps(document).encode()
    return status_and_json(exchange(port, request("POST", path, body, WRITE)))


@pytest.fixture(scope="module")
def sidecar(
    readmission_v1: BentoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SidecarProcess]:
    folder = tmp_path_factory.mktemp("probed-sidecar")
    with running_sidecar(sidecar_config(readmission_v1.url, folder), folder) as process:
        yield process


def prediction(request_id: str) -> tuple[bytes, dict[str, str]]:
    body = prediction_requests(generate_cohort(1, 7))[0].body
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    return json.dumps(body).encode(), headers


def outcome_status(port: int, request_id: str) -> str:
    """What the sidecar says of an outcome for `request_id`: accepted when it had recorded
    the prediction, unknown when it never had."""
    status, answer = post_json(
        port, "/v1/outcomes", {"outcomes": [{"request_id": request_id, "label": 1}]}
    )
    assert status == 200
    return "accepted" if answer["accepted"] == 1 else answer["rejected"][0]["status"]


# 1. A batch with nothing to commit.


@pytest.mark.parametrize(
    ("path", "document"),
    [
        ("/v1/outcomes", {"outcomes": []}),
        ("/v1/outcomes", {"outcomes": [{"request_id": "x", "label": 7}, 3]}),
        ("/v1/records", {"records": []}),
        ("/v1/records", {"records": [{"request_id": "y", "score": 2}]}),
    ],
)
def test_a_batch_with_nothing_valid_is_answered_at_once(
    sidecar: SidecarProcess, path: str, document: object
) -> None:
    items = next(iter(document.values()))  # type: ignore[attr-defined]
    status, answer = post_json(sidecar.port, path, document)
    assert status == 200
    assert (answer["accepted"], answer["invalid"]) == (0, len(items))


def test_after_an_empty_batch_sigterm_drains_and_exits_at_once(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    process = start_sidecar(sidecar_config(readmission_v1.url, tmp_path), tmp_path)
    assert post_json(process.port, "/v1/outcomes", {"outcomes": []})[0] == 200
    # stop() waits 30 s at most, well within what the 10 s drain promises.
    assert process.stop(signal.SIGTERM) == 0


# 2. Every spelling of the prediction path.


@pytest.mark.parametrize(
    "target",
    [
        "/predict",
        "/./predict",
        "/%70redict",
        "/pre%64ict?x=1",
        "/v1/../predict",
        "/%2e/predict",
        "/predict/.",
        "//predict",
        "/predict/",
        "/PREDICT",
        "/predict%2f",
        "http://elsewhere/predict",
    ],
)
def test_a_prediction_the_model_answers_is_recorded_whatever_the_spelling_of_its_path(
    sidecar: SidecarProcess, target: str
) -> None:
    request_id = f"spelling-{abs(hash(target))}"
    body, headers = prediction(request_id)
    status, answer = status_and_json(exchange(sidecar.port, request("POST", target, body, headers)))
    if status == 200 and isinstance(answer, dict) and "risk" in answer:
        assert outcome_status(sidecar.port, request_id) == "accepted"
    else:
        assert 300 <= status < 500, answer
        assert outcome_status(sidecar.port, request_id) == "unknown"


# 3. Heads of any size.


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Large": "a" * (1 << 20)},
        {f"X-Many-{i}": "v" for i in range(150)},
    ],
    ids=["one-large-field", "many-fields"],
)
def test_a_request_head_over_the_limit_gets_431_and_others_are_still_served(
    sidecar: SidecarProcess, headers: dict[str, str]
) -> None:
    answer = exchange(sidecar.port, request("GET", "/healthz", headers=headers))
    status, refusal = status_and_json(answer)
    assert status == 431
    assert refusal["error"] in (
        "the request's head exceeds 32768 bytes",
        "the request has more than 100 header fields",
    )
    assert b"connection: close" in answer.lower()
    assert status_and_json(exchange(sidecar.port, request("GET", "/healthz")))[0] == 200


def test_a_head_of_a_hundred_megabytes_is_cut_off_without_reading_it(
    sidecar: SidecarProcess,
) -> None:
    with socket.create_connection((LOOPBACK, sidecar.port), timeout=ANSWER_SECONDS) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: s\r\nX-Large: ")
        sent = 0
        try:
            while sent < 100 << 20:
                sock.sendall(b"a" * (1 << 20))
                sent += 1 << 20
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 100 << 20, "the sidecar read the whole head"
    assert status_and_json(exchange(sidecar.port, request("GET", "/healthz")))[0] == 200


# 4. JSON nested deeper than a parser's stack.


@pytest.mark.parametrize("path", ["/v1/outcomes", "/v1/records", "/predict"])
def test_deeply_nested_json_gets_400_with_a_reason(sidecar: SidecarProcess, path: str) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    answer = exchange(sidecar.port, request("POST", path, body, WRITE))
    status, refusal = status_and_json(answer)
    assert status == 400
    assert refusal["error"] in (
        "the body nests JSON too deeply",
        "the request body nests JSON too deeply",
    )
    assert status_and_json(exchange(sidecar.port, request("GET", "/healthz")))[0] == 200


# 5. Revisions.


def test_records_of_a_revision_the_sidecar_does_not_serve_are_refused_and_never_labelled(
    sidecar: SidecarProcess,
) -> None:
    canary = "MRN-58213977"
    status, answer = post_json(
        sidecar.port,
        "/v1/records",
        {"records": [{"request_id": "rev-1", "score": 0.4, "label": 1, "revision": canary}]},
    )
    assert (status, answer["invalid"], answer["accepted"]) == (200, 1, 0)
    assert canary not in answer["rejected"][0]["reason"]
    metrics = exchange(sidecar.port, request("GET", "/metrics"))
    assert canary.encode() not in metrics


# 6. Trailers.


def test_a_trailer_field_never_acts_as_a_header(sidecar: SidecarProcess) -> None:
    body, headers = prediction("header-id-1")
    del headers["X-Request-Id"]
    head = "\r\n".join(
        ["POST /predict HTTP/1.1", "Host: sidecar", "Connection: close"]
        + [f"{name}: {value}" for name, value in headers.items()]
        + ["Transfer-Encoding: chunked", "Trailer: X-Request-Id"]
    )
    chunked = b"%x\r\n%s\r\n0\r\nX-Request-Id: trailer-id-1\r\n\r\n" % (len(body), body)
    answer = exchange(sidecar.port, head.encode() + b"\r\n\r\n" + chunked)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"trailer-id-1" not in answer
    assert outcome_status(sidecar.port, "trailer-id-1") == "unknown"


# 7. HTTP versions.


def test_an_http_1_0_request_is_answered_and_its_connection_closed(
    sidecar: SidecarProcess,
) -> None:
    body, headers = prediction("http10-1")
    message = request("POST", "/predict", body, headers).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    answer = exchange(sidecar.port, message.replace(b"Connection: close\r\n", b""))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in answer.lower()
    assert outcome_status(sidecar.port, "http10-1") == "accepted"


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b""])
def test_other_http_versions_are_refused(sidecar: SidecarProcess, version: bytes) -> None:
    message = request("GET", "/healthz").replace(b"HTTP/1.1", version, 1)
    answer = exchange(sidecar.port, message)
    status, refusal = status_and_json(answer)
    assert status == 400
    assert refusal["error"] in (
        "the sidecar speaks HTTP/1.1 (and answers HTTP/1.0)",
        "the request is not valid HTTP/1.1",
    )
    assert b"connection: close" in answer.lower()


# 8. Slow clients.


def test_slow_and_idle_connections_are_closed_and_others_are_served(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    config = sidecar_config(readmission_v1.url, tmp_path)
    config["sidecar"] |= {"headerTimeout": "1s", "idleTimeout": "2s"}
    with running_sidecar(config, tmp_path) as process:
        slow = [socket.create_connection((LOOPBACK, process.port)) for _ in range(40)]
        idle = [socket.create_connection((LOOPBACK, process.port)) for _ in range(40)]
        try:
            for sock in slow:
                sock.settimeout(ANSWER_SECONDS)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: s\r\nX-Slow")
            for sock in idle:
                sock.settimeout(ANSWER_SECONDS)
            body, headers = prediction("beside-slow-1")
            served = exchange(process.port, request("POST", "/predict", body, headers))
            assert served.startswith(b"HTTP/1.1 200 OK")
            # Each is closed by the sidecar (a timeout here would fail the test).
            assert {read_to_end(sock).split(b"\r\n", 1)[0] for sock in slow} == {
                b"HTTP/1.1 408 Request Timeout"
            }
            assert {read_to_end(sock) for sock in idle} == {b""}
        finally:
            for sock in slow + idle:
                sock.close()


# 9. The token.


def test_an_empty_token_file_stops_the_sidecar_at_start_with_a_reason(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    config = sidecar_config(readmission_v1.url, tmp_path)
    (tmp_path / "token").write_text("\n")
    with pytest.raises(RuntimeError) as failed:
        start_sidecar(config, tmp_path, ready_timeout=60)
    assert f"sidecar.tokenFile: the token file {tmp_path / 'token'} is empty" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_a_token_file_emptied_while_running_gets_503_with_a_reason_until_it_is_back(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    config = sidecar_config(readmission_v1.url, tmp_path)
    token = tmp_path / "token"
    with running_sidecar(config, tmp_path) as process:
        token.write_text("")
        status, answer = post_json(process.port, "/v1/outcomes", {"outcomes": []})
        assert status == 503
        assert answer["error"].startswith(f"the token file {token} is empty")
        body, headers = prediction("while-no-token-1")
        assert exchange(process.port, request("POST", "/predict", body, headers)).startswith(
            b"HTTP/1.1 200 OK"
        )
        token.write_text(TOKEN)
        assert post_json(process.port, "/v1/outcomes", {"outcomes": []})[0] == 200
