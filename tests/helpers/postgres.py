"""A private PostgreSQL server from Debian's packages, for tests.

``running_postgres()`` runs ``initdb`` and ``pg_ctl`` from
/usr/lib/postgresql/<version>/bin (override: ``EQUIGUARD_PG_BINDIR``) in a
fresh temporary folder, listening on a free loopback port and a Unix socket in
that folder only; no system service is involved. Password authentication
(SCRAM) for a superuser ``equiguard`` with a random password. fsync is off:
the tests kill clients, or stop this server (``stop_postgres``, then
``start_postgres``), never the machine, whose page cache keeps what was
written; speed matters more.

PostgreSQL refuses to run as root. When the tests run as root, the server runs
as the ``postgres`` account that Debian's package creates (through
``setpriv``), and the temporary folder is handed to it; otherwise it runs as
the current user.

Fixtures: ``postgres_server`` (one server per session) and ``postgres_dsn``
(a fresh, empty database per test, dropped afterwards).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from helpers.bento import LOOPBACK, free_port

SERVICE_ACCOUNT = "postgres"
# The node's address on its pods' bridge, and their subnet (cluster/node.sh).
NODE_ADDRESS, POD_SUBNET = "10.244.0.1", "10.244.0.0/24"
SUPERUSER = "equiguard"


@dataclass(frozen=True)
class PostgresServer:
    port: int
    password: str
    folder: Path

    def dsn(self, database: str = "postgres", host: str = LOOPBACK) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{host}:{self.port}/{database}"

    def pod_dsn(self, database: str) -> str:
        """The DSN pods use: the server listens on the node's address too."""
        return self.dsn(database, NODE_ADDRESS)

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def find_bindir() -> Path:
    """The newest installed server's bin folder (or ``$EQUIGUARD_PG_BINDIR``)."""
    override = os.environ.get("EQUIGUARD_PG_BINDIR")
    candidates = (
        [Path(override)]
        if override
        else sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql: "
        "run `make deps` (or `apt-get install -y postgresql`), or set EQUIGUARD_PG_BINDIR"
    )


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a private server, yield it, stop it and delete its folder."""
    bindir = find_bindir()
    as_account = _account_command()
    folder = Path(tempfile.mkdtemp(prefix="equiguard-pg-"))
    try:
        password = secrets.token_hex(16)
        (folder / "password").write_text(password)
        _hand_over(folder)
        data = folder / "data"
        _run(
            [
                *as_account, str(bindir / "initdb"), "--pgdata", str(data),
                "--username", SUPERUSER, "--pwfile", str(folder / "password"),
                "--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale",
                "--no-sync", "--no-instructions",
            ]
        )  # fmt: skip
        (folder / "password").unlink()
        port = free_port()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\n"
                # Pods reach it on the node's address. Without a cluster up
                # that address is absent, and PostgreSQL starts on loopback
                # alone (it needs one address it can listen on, and warns).
                f"listen_addresses = '{LOOPBACK},{NODE_ADDRESS}'\n"
                f"unix_socket_directories = '{folder}'\n"
                "fsync = off\nfull_page_writes = off\n"
            )
        with (data / "pg_hba.conf").open("a") as hba:  # pods, from their subnet
            hba.write(f"host all all {POD_SUBNET} scram-sha-256\n")
        pg_ctl = [*as_account, str(bindir / "pg_ctl"), "--pgdata", str(data)]
        log = folder / "server.log"
        try:
            _run([*pg_ctl, "--log", str(log), "--wait", "--timeout", "60", "start"])
        except RuntimeError as failure:
            raise RuntimeError(f"{failure}\n{log.read_text(errors='replace')}") from failure
        try:
            yield PostgresServer(port, password, folder)
        finally:
            _run([*pg_ctl, "--mode", "fast", "--wait", "stop"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stop_postgres(server: PostgresServer, mode: str = "immediate") -> None:
    """Stop a running server (``immediate``: as if it crashed, recovering at the next start)."""
    _run([*_pg_ctl(server), "--mode", mode, "--wait", "stop"])


def start_postgres(server: PostgresServer) -> None:
    """Start a stopped server again, on the same port and data."""
    _run([*_pg_ctl(server), "--log", str(server.folder / "server.log"), "--wait", "start"])


def _pg_ctl(server: PostgresServer) -> list[str]:
    return [
        *_account_command(),
        str(find_bindir() / "pg_ctl"),
        "--pgdata",
        str(server.folder / "data"),
    ]


def _account_command() -> list[str]:
    """The prefix that runs a command as the unprivileged server account, if needed."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError as missing:
        raise RuntimeError(
            f"running as root and there is no {SERVICE_ACCOUNT!r} account to run PostgreSQL "
            "as; Debian's postgresql package creates it"
        ) from missing
    return ["setpriv", f"--reuid={SERVICE_ACCOUNT}", f"--regid={SERVICE_ACCOUNT}",
            "--init-groups", "--"]  # fmt: skip


def _hand_over(folder: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVICE_ACCOUNT)
        for path in (folder, *folder.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    yield postgres_server.dsn(name)
    postgres_server.drop_database(name)
