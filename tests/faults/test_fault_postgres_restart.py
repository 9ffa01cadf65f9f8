"""Fault: the PostgreSQL server behind a sidecar restarts (crashes and recovers) under load.

A real sidecar on a private PostgreSQL, in front of a real `bentoml serve`,
answers predictions from four clients while an outcome feed posts batches of
their outcomes, resending a batch that was not acknowledged as a real feed
does. The server is stopped as if it crashed once enough outcomes were
acknowledged, kept down until the sidecar has refused outcome batches, then
started again. What must hold: predictions are answered throughout; while
the store is down outcome batches get 503 and `/readyz` says so (and stays
200: the model keeps serving); afterwards every outcome acknowledged as
accepted is in the store with its label, every prediction answered during the
outage reached the store, and the sidecar's statistics count exactly the
acknowledged outcomes. Everything is driven by counts, not durations.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
from equiguard.cohort import generate_cohort, outcome_messages, prediction_requests
from equiguard.engine.stats import Statistics
from helpers.bento import BentoServer
from helpers.postgres import PostgresServer, running_postgres, start_postgres, stop_postgres
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config

PREDICTORS = 4
OUTCOME_BATCH = 25
ACKNOWLEDGED_BEFORE_CRASH = 200
REFUSED_WHILE_DOWN = 3  # outcome batches answered 503 before the server comes back
ANSWERED_WHILE_DOWN = 50  # predictions answered while it is down
ACKNOWLEDGED_AFTER = 200  # more outcomes acknowledged after it is back
DEADLINE_SECONDS = 300.0  # only a bound against a hang
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Connection:
    """One keep-alive HTTP connection to the sidecar."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        sent = AUTH | {"Content-Type": "application/json"} | (headers or {})
        self._http.request(method, path, None if body is None else json.dumps(body), sent)
        response = self._http.getresponse()
        return response.status, json.loads(response.read())


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.01)


def test_a_postgres_restart_under_load_loses_no_acknowledged_outcome_and_readiness_says_so(
    readmission_v1: BentoServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    database = postgres.create_database()
    dsn = postgres.dsn(database)
    config = sidecar_config(
        readmission_v1.url, tmp_path, store={"type": "postgresql", "dsnEnv": "STORE_DSN"}
    )
    cohort = generate_cohort(6000, 424242)
    requests = prediction_requests(cohort)
    messages = outcome_messages(cohort)
    lock = threading.Lock()
    answered: list[int] = []  # rows whose prediction was answered 200, in order
    answered_down: list[int] = []  # of those, answered while the server was down
    accepted: list[int] = []  # rows whose outcome was acknowledged as accepted
    # Rows whose outcome was committed as the server crashed but answered 503: a
    # resend finds them duplicate.
    committed_unacknowledged: list[int] = []
    refused_batches = 0  # outcome batches answered 503
    # Outcome batches sent once the server was down and yet acknowledged: a lie.
    # (Batches sent while it was being stopped may commit: the feed cannot know.)
    acknowledged_after_crash = 0
    problems: list[str] = []
    store_down = threading.Event()
    finished = threading.Event()
    readiness: list[tuple[int, Any]] = []

    with running_sidecar(config, tmp_path, env={"STORE_DSN": dsn}) as sidecar:
        assert Connection(sidecar.url).call("GET", "/readyz") == (
            200,
            {"status": "ready", "store": "available"},
        )

        def predict(offset: int) -> None:
            connection = Connection(sidecar.url)
            for row in range(offset, len(requests), PREDICTORS):
                if finished.is_set():
                    return
                request = requests[row]
                status, _ = connection.call("POST", "/predict", request.body, request.headers)
                if status != 200:
                    problems.append(f"a prediction got {status}")
                    return
                with lock:
                    answered.append(row)
                    if store_down.is_set():
                        answered_down.append(row)

        def feed() -> None:
            nonlocal refused_batches, acknowledged_after_crash
            connection = Connection(sidecar.url)
            sent = 0
            while not finished.is_set():
                with lock:
                    batch = list(answered[sent : sent + OUTCOME_BATCH])
                if len(batch) < OUTCOME_BATCH:
                    time.sleep(0.005)
                    continue
                sent_while_down = store_down.is_set()
                status, answer = connection.call(
                    "POST", "/v1/outcomes", {"outcomes": [messages[row] for row in batch]}
                )
                if status == 503:  # nothing of it recorded: resent, as a feed does
                    with lock:
                        refused_batches += 1
                    time.sleep(0.05)
                    continue
                if status != 200:
                    problems.append(f"an outcome batch got {status}")
                    return
                statuses = {item["index"]: item["status"] for item in answer["rejected"]}
                if set(statuses.values()) - {"duplicate"}:
                    problems.append(f"outcomes were refused: {set(statuses.values())}")
                    return
                with lock:
                    acknowledged_after_crash += sent_while_down
                    accepted.extend(row for i, row in enumerate(batch) if i not in statuses)
                    committed_unacknowledged.extend(batch[i] for i in statuses)
                sent += len(batch)

        workers = [threading.Thread(target=predict, args=(i,)) for i in range(PREDICTORS)]
        workers.append(threading.Thread(target=feed))
        for worker in workers:
            worker.start()
        try:
            wait_for(lambda: len(accepted) >= ACKNOWLEDGED_BEFORE_CRASH, "outcomes acknowledged")
            with lock:
                before_crash = len(accepted)
            stop_postgres(postgres, mode="immediate")
            store_down.set()
            wait_for(
                lambda: (
                    refused_batches >= REFUSED_WHILE_DOWN
                    and len(answered_down) >= ANSWERED_WHILE_DOWN
                ),
                "outcomes refused and predictions answered while the store is down",
            )
            readiness.append(Connection(sidecar.url).call("GET", "/readyz"))
            store_down.clear()  # before the start: what is sent while set, is sent while down
            start_postgres(postgres)
            wait_for(
                lambda: len(accepted) >= before_crash + ACKNOWLEDGED_AFTER,
                "outcomes acknowledged after the restart",
            )
            readiness.append(Connection(sidecar.url).call("GET", "/readyz"))
        finally:
            finished.set()
            for worker in workers:
                worker.join(timeout=60)
        stats = Statistics.from_dict(Connection(sidecar.url).call("GET", "/v1/stats")[1])

    assert problems == []
    assert acknowledged_after_crash == 0
    assert readiness == [
        (200, {"status": "ready", "store": "unavailable"}),
        (200, {"status": "ready", "store": "available"}),
    ]
    with psycopg.connect(dsn) as db:
        rows = dict(db.execute("SELECT request_id, label FROM predictions").fetchall())
    ids = [requests[row].request_id for row in range(len(requests))]
    labels = cohort["label"]
    lost = [
        row
        for row in accepted + committed_unacknowledged
        if rows.get(ids[row]) != bool(labels[row])
    ]
    assert lost == [], f"{len(lost)} acknowledged outcomes are not in the store"
    missing = [row for row in answered_down if ids[row] not in rows]
    assert missing == [], f"{len(missing)} predictions answered during the outage were lost"
    overall = stats.cells.index(("overall", "all"))
    assert int(np.sum(stats.histogram[overall])) == len(accepted)
    postgres.drop_database(database)
