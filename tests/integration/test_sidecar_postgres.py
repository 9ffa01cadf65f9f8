"""Two sidecar replicas sharing a real PostgreSQL, in front of a real model server.

An outcome sent to the replica that did not serve the prediction still
joins, and the two replicas' statistics add up to the pooled statistics.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from equiguard.cohort import generate_cohort, outcome_messages, prediction_requests
from equiguard.engine.stats import Statistics, sum_statistics
from equiguard.sidecar.records import Prediction
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_postgres import PostgresStore
from helpers.bento import BentoServer
from helpers.sidecar import (
    TOKEN,
    assert_same_statistics,
    pooled_statistics,
    running_sidecar,
    sidecar_config,
)

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def call(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or AUTH)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_outcomes_join_on_the_other_replica_and_replica_statistics_sum_to_the_pooled_ones(
    readmission_v1: BentoServer, postgres_dsn: str, tmp_path: Path
) -> None:
    store = {"type": "postgresql", "dsnEnv": "STORE_DSN"}
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    configs = [
        sidecar_config(readmission_v1.url, folder, store=store, replica_id=name)
        for folder, name in zip(folders, ("replica-a", "replica-b"), strict=True)
    ]
    cohort = generate_cohort(300, 99)
    requests = prediction_requests(cohort)
    env = {"STORE_DSN": postgres_dsn}
    with (
        running_sidecar(configs[0], folders[0], env=env) as a,
        running_sidecar(configs[1], folders[1], env=env) as b,
    ):
        replicas = [a, b]
        risks = np.array(
            [
                call(
                    f"{replicas[i % 2].url}/predict",
                    r.body,
                    r.headers | {"Content-Type": "application/json"},
                )["risk"]
                for i, r in enumerate(requests)
            ]
        )
        messages = outcome_messages(cohort)
        # Outcomes come days later; a prediction is committed within about
        # 10 ms of its answer, after which every replica can join it.
        time.sleep(0.5)
        # Every outcome goes to the replica that did not serve its prediction.
        answers = [
            call(f"{replica.url}/v1/outcomes", {"outcomes": messages[1 - parity :: 2]})
            for parity, replica in enumerate(replicas)
        ]
        assert [answer["accepted"] for answer in answers] == [150, 150]
        parts = [
            Statistics.from_dict(call(f"{r.url}/v1/stats?window=7d", headers=AUTH))
            for r in replicas
        ]
    expected = pooled_statistics(cohort, risks)
    assert_same_statistics(sum_statistics(parts), expected)
    # Each replica counts what it joined, so neither holds everything.
    assert all(part.histogram.sum() < expected.histogram.sum() for part in parts)


def test_a_replica_restarted_under_its_name_keeps_counting_its_own_rows_only(
    readmission_v1: BentoServer, postgres_dsn: str, tmp_path: Path
) -> None:
    store = {"type": "postgresql", "dsnEnv": "STORE_DSN"}
    env = {"STORE_DSN": postgres_dsn}
    cohort = generate_cohort(40, 5)
    requests = prediction_requests(cohort)
    messages = outcome_messages(cohort)
    config_a = sidecar_config(readmission_v1.url, tmp_path, store=store, replica_id="replica-a")
    config_b = sidecar_config(readmission_v1.url, tmp_path, store=store, replica_id="replica-b")
    with running_sidecar(config_b, tmp_path, env=env) as b:
        with running_sidecar(config_a, tmp_path, env=env) as a:
            for r in requests:
                call(f"{a.url}/predict", r.body, r.headers | {"Content-Type": "application/json"})
            time.sleep(0.5)  # as above: outcomes come later than the commit
            call(f"{a.url}/v1/outcomes", {"outcomes": messages[:20]})
            call(f"{b.url}/v1/outcomes", {"outcomes": messages[20:]})
            before = [call(f"{s.url}/v1/stats", headers=AUTH) for s in (a, b)]
        with running_sidecar(config_a, tmp_path, env=env) as a:
            after = [call(f"{s.url}/v1/stats", headers=AUTH) for s in (a, b)]
    assert after == before
    overall = [Statistics.from_dict(s).confusion() for s in after]
    assert sum(int(counts[0]) for confusion in overall for counts in confusion) == 40


def test_the_rows_of_a_silent_replica_are_adopted_once_and_it_learns_it_was_replaced(
    postgres_dsn: str,
) -> None:
    a = PostgresStore(postgres_dsn, "replica-a", lease_seconds=300)
    b = PostgresStore(postgres_dsn, "replica-b", lease_seconds=300)
    c = PostgresStore(postgres_dsn, "replica-c", lease_seconds=300)
    for store in (a, b, c):
        store.upkeep(now=1000.0, pending_before=0.0, labelled_before=0.0)
    a.write(
        WriteBatch(
            records=[(Prediction(f"r-{i}", 900.0, "v1", {}, 0.5, True), True) for i in range(25)]
        ),
        now=1000.0,
    )
    # b and c keep renewing their leases; a falls silent for longer than its lease.
    for store in (b, c):
        assert store.upkeep(now=1300.0, pending_before=0.0, labelled_before=0.0).adopted == []
    adopted_by_b = b.upkeep(now=1400.0, pending_before=0.0, labelled_before=0.0)
    adopted_by_c = c.upkeep(now=1401.0, pending_before=0.0, labelled_before=0.0)
    assert (len(adopted_by_b.adopted), len(adopted_by_c.adopted)) == (25, 0)
    assert not adopted_by_b.evicted and not adopted_by_c.evicted
    assert len(list(b.labelled(0.0))) == 25
    assert a.upkeep(now=1402.0, pending_before=0.0, labelled_before=0.0).evicted
    assert list(a.labelled(0.0)) == []
    for store in (a, b, c):
        store.close()
