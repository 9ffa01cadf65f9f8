"""The tests' private PostgreSQL: reachable with a password on loopback and the
node's address (where pods reach it) only, run by an unprivileged account, one
fresh database per test."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from helpers.postgres import NODE_ADDRESS, PostgresServer


def test_a_fresh_database_accepts_writes_over_loopback_with_a_password(
    postgres_dsn: str,
) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        connection.execute("CREATE TABLE outcome (request_id text PRIMARY KEY, label int)")
        connection.execute("INSERT INTO outcome VALUES ('r-1', 1)")
        rows = connection.execute("SELECT request_id, label FROM outcome").fetchall()
        listen = connection.execute("SHOW listen_addresses").fetchone()
    assert rows == [("r-1", 1)]
    # Never '*': the server is reachable from this host and its pods, no further.
    assert listen == (f"127.0.0.1,{NODE_ADDRESS}",)


def test_each_test_gets_an_empty_database(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_a_wrong_password_is_refused(postgres_server: PostgresServer) -> None:
    wrong = postgres_server.dsn().replace(postgres_server.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_the_server_does_not_run_as_root(postgres_server: PostgresServer) -> None:
    data = Path(postgres_server.folder) / "data"
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0
