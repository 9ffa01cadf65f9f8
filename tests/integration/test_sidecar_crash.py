"""A sidecar killed with SIGKILL under load loses nothing it acknowledged.

Predictions flow through a real sidecar to a real model server while an
outcome feed posts batches; the sidecar is killed mid-stream and restarted
on the same store. Its statistics then equal the pooled statistics of the
outcomes it acknowledged; an outcome batch that was in flight is resent, as
a feed would, and counts once whether or not it had been committed. Every
prediction it had answered is still there: the outcomes of all of them join.
"""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from equiguard.cohort import generate_cohort, outcome_messages, prediction_requests
from equiguard.engine.stats import Statistics
from helpers.bento import BentoServer
from helpers.sidecar import (
    TOKEN,
    assert_same_statistics,
    pooled_statistics,
    sidecar_config,
    start_sidecar,
)

PREDICTORS = 4
OUTCOME_BATCH = 40
# The sidecar is killed once this many outcomes were acknowledged and this many
# more predictions were answered than the feed has sent outcomes for: counts,
# so the test does not depend on how fast the machine is.
ACKNOWLEDGED_BEFORE_KILL = 400
UNREPORTED_BEFORE_KILL = 20
# Only a bound against a hang: the counts above come in a few seconds.
LOAD_DEADLINE_SECONDS = 300.0


class Connection:
    """One keep-alive HTTP connection to the sidecar."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    def post(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        self._http.request(
            "POST", path, json.dumps(body), headers | {"Content-Type": "application/json"}
        )
        response = self._http.getresponse()
        return response.status, json.loads(response.read())

    def get(self, path: str, headers: dict[str, str]) -> Any:
        self._http.request("GET", path, headers=headers)
        return json.loads(self._http.getresponse().read())


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_statistics_after_a_sigkill_under_load_equal_those_of_everything_acknowledged(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    cohort = generate_cohort(20_000, 31337)
    requests = prediction_requests(cohort)
    messages = outcome_messages(cohort)
    risks = np.full(len(cohort), np.nan)
    answered: list[int] = []  # rows whose prediction was answered 200, in order
    accepted: list[int] = []  # rows whose outcome was acknowledged as accepted
    in_flight: list[int] = []  # rows of the outcome batch sent when the sidecar died
    lock = threading.Lock()
    config = sidecar_config(readmission_v1.url, tmp_path)
    sidecar = start_sidecar(config, tmp_path)

    def predict(offset: int) -> None:
        connection = Connection(sidecar.url)
        for row in range(offset, len(requests), PREDICTORS):
            request = requests[row]
            try:
                status, answer = connection.post("/predict", request.body, request.headers)
            except (ConnectionError, http.client.HTTPException):
                return
            assert status == 200
            with lock:
                risks[row] = answer["risk"]
                answered.append(row)

    stopped = threading.Event()

    def feed() -> None:
        connection = Connection(sidecar.url)
        sent = 0
        while not stopped.is_set():
            with lock:
                ready = len(answered)
                batch = (
                    list(answered[sent : sent + OUTCOME_BATCH])
                    if ready - sent >= OUTCOME_BATCH
                    else []
                )
                in_flight[:] = batch
            if not batch:
                time.sleep(0.005)
                continue
            try:
                status, answer = connection.post(
                    "/v1/outcomes", {"outcomes": [messages[row] for row in batch]}, AUTH
                )
            except (ConnectionError, http.client.HTTPException):
                return
            assert status == 200
            refused = {item["index"] for item in answer["rejected"]}
            with lock:
                accepted.extend(row for i, row in enumerate(batch) if i not in refused)
                in_flight.clear()
            sent += len(batch)

    workers = [threading.Thread(target=predict, args=(i,), daemon=True) for i in range(PREDICTORS)]
    workers.append(threading.Thread(target=feed, daemon=True))
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + LOAD_DEADLINE_SECONDS
    while True:
        with lock:
            reported = len(accepted) + len(in_flight)
            if (
                len(accepted) >= ACKNOWLEDGED_BEFORE_KILL
                and len(answered) - reported >= UNREPORTED_BEFORE_KILL
            ):
                # Killed with the lock held: the counts cannot move before it dies.
                sidecar.stop(signal.SIGKILL)
                break
        assert time.monotonic() < deadline, "the sidecar stopped answering under load"
        assert any(w.is_alive() for w in workers[:PREDICTORS]), "the predictions ran out"
        time.sleep(0.005)
    stopped.set()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()
    acknowledged = list(accepted)

    restarted = start_sidecar(config, tmp_path)
    try:
        connection = Connection(restarted.url)
        after_restart = Statistics.from_dict(connection.get("/v1/stats", AUTH))
        committed_unacknowledged: list[int] = []
        joined_now: list[int] = []
        if in_flight:
            # A feed resends what was not acknowledged: items committed before
            # the crash come back as duplicates, the others are joined now.
            status, answer = connection.post(
                "/v1/outcomes", {"outcomes": [messages[row] for row in in_flight]}, AUTH
            )
            assert status == 200
            duplicates = {i["index"] for i in answer["rejected"] if i["status"] == "duplicate"}
            committed_unacknowledged = [row for i, row in enumerate(in_flight) if i in duplicates]
            refused = {item["index"] for item in answer["rejected"]}
            joined_now = [row for i, row in enumerate(in_flight) if i not in refused]
        after_resend = Statistics.from_dict(connection.get("/v1/stats", AUTH))
        reported = set(acknowledged) | set(in_flight)
        late = [row for row in answered if row not in reported]
        statuses: list[str] = []
        for start in range(0, len(late), 500):
            status, answer = connection.post(
                "/v1/outcomes",
                {"outcomes": [messages[row] for row in late[start : start + 500]]},
                AUTH,
            )
            assert status == 200
            statuses.extend(item["status"] for item in answer["rejected"])
        after_all = Statistics.from_dict(connection.get("/v1/stats", AUTH))
    finally:
        restarted.stop()
    before_resend = acknowledged + committed_unacknowledged
    assert_same_statistics(after_restart, pooled_statistics(cohort, risks, np.array(before_resend)))
    assert_same_statistics(
        after_resend, pooled_statistics(cohort, risks, np.array(before_resend + joined_now))
    )
    # Predictions answered in the last moments before the kill, whose batch
    # was not committed yet, came back from the journal.
    assert late, "the feed kept up with every prediction: nothing answered was left to join"
    assert statuses == [], f"answered predictions were lost: {sorted(set(statuses))}"
    assert_same_statistics(
        after_all,
        pooled_statistics(cohort, risks, np.array(before_resend + joined_now + late)),
    )
