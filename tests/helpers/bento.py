"""The readmission example served by a real ``bentoml serve`` on loopback.

Fixtures (session-scoped, built and started only when a test asks):

- ``readmission_bento_home``: a private BENTOML_HOME holding the bentos
  ``readmission:v1`` and ``readmission:v2`` (built once per session, ~10 s);
- ``readmission_v1`` / ``readmission_v2``: a running server of that revision
  (a ``BentoServer``; ``.url`` is ``http://127.0.0.1:<port>``).

A test that stops or restarts the model (an upstream that goes down) starts
its own with ``served_bento(readmission_bento_home, "readmission:v1")``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "examples" / "readmission" / "build.py"
LOOPBACK = "127.0.0.1"


def bentoml_env(home: Path) -> dict[str, str]:
    return os.environ | {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def build_readmission_bentos(home: Path) -> None:
    """Train revisions v1 and v2 and build their bentos into ``home``."""
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the readmission bentos failed:\n{result.stderr[-3000:]}")


@dataclass
class BentoServer:
    """A ``bentoml serve`` process of one bento; ``stop`` is idempotent."""

    tag: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # The server leads its own process group (its workers are in it too).
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_bento(
    home: Path, tag: str, *, port: int | None = None, ready_timeout: float = 60.0,
    command: list[str] | None = None, env: dict[str, str] | None = None,
    logs: Path | None = None,
) -> BentoServer:  # fmt: skip
    """Start ``bentoml serve <tag>`` (or `command`, followed by the address) on loopback and
    return once /readyz answers 200."""
    port = port or free_port()
    log = (logs or home) / f"serve-{tag.replace(':', '-')}-{port}.log"
    serve = command or [sys.executable, "-m", "bentoml", "serve", tag]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*serve, "--host", LOOPBACK, "--port", str(port)],
            env=bentoml_env(home) | (env or {}),
            cwd=logs or home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = BentoServer(tag, f"http://{LOOPBACK}:{port}", port, process, log)
    deadline = time.monotonic() + ready_timeout
    while not _ready(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"bentoml serve {tag} did not become ready:\n{server.log_tail()}")
        time.sleep(0.1)
    return server


@contextmanager
def served_bento(home: Path, tag: str, *, port: int | None = None) -> Iterator[BentoServer]:
    """A running server of ``tag`` for the duration of the block."""
    server = start_bento(home, tag, port=port)
    try:
        yield server
    finally:
        server.stop()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def readmission_bento_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml")
    build_readmission_bentos(home)
    return home


@pytest.fixture(scope="session")
def readmission_v1(readmission_bento_home: Path) -> Iterator[BentoServer]:
    with served_bento(readmission_bento_home, "readmission:v1") as server:
        yield server


@pytest.fixture(scope="session")
def readmission_v2(readmission_bento_home: Path) -> Iterator[BentoServer]:
    with served_bento(readmission_bento_home, "readmission:v2") as server:
        yield server
