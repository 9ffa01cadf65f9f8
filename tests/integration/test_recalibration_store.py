"""Joined outcomes read from a real PostgreSQL store that two sidecar replicas share:
every replica's rows, once, whichever replica joined them."""

from __future__ import annotations

import numpy as np
from equiguard.recalibration.outcomes import PostgresOutcomes, StoreError, open_source
from equiguard.sidecar.records import Outcome, Prediction
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_postgres import PostgresStore
from helpers.recalibration import DAY, NOW, cohort_outcomes, example_manifest

MANIFEST = example_manifest()
ATTRIBUTES = [a["name"] for a in MANIFEST["spec"]["subgroups"]["attributes"]]


def test_reads_the_rows_every_replica_joined_in_the_window(postgres_dsn: str) -> None:
    _, outcomes = cohort_outcomes(MANIFEST, 400, seed=41)
    replicas = [PostgresStore(postgres_dsn, f"replica-{r}", 60.0) for r in ("a", "b")]
    try:
        for r, store in enumerate(replicas):  # each replica served every other prediction
            predictions = [
                Prediction(f"req-{i}", float(outcomes.times[i]), "readmission:v1",
                           {n: str(c[i]) for n, c in outcomes.groups.items()},
                           float(outcomes.scores[i]), bool(outcomes.scores[i] >= 0.3))
                for i in range(r, 400, 2)
            ]  # fmt: skip
            store.write(WriteBatch(predictions=predictions), NOW)
        # Outcomes reach whichever replica the feed talks to: all of them to replica b.
        joined = [Outcome(f"req-{i}", bool(outcomes.labels[i]), {}) for i in range(380)]
        replicas[1].write(WriteBatch(outcomes=joined), NOW)
    finally:
        for store in replicas:
            store.close()
    since = NOW - 6 * DAY
    read = open_source(postgres_dsn).joined("readmission:v1", since, NOW, ATTRIBUTES)
    assert isinstance(open_source(postgres_dsn), PostgresOutcomes)
    expected = np.flatnonzero(outcomes.times[:380] >= since)
    assert len(read) == len(expected) > 0
    np.testing.assert_array_equal(read.times, outcomes.times[expected])
    np.testing.assert_array_equal(read.scores, outcomes.scores[expected])
    np.testing.assert_array_equal(read.labels, outcomes.labels[expected])
    assert read.groups["race"].tolist() == outcomes.groups["race"][expected].tolist()


def test_an_unreachable_server_is_a_store_error_without_the_password(postgres_dsn: str) -> None:
    wrong = postgres_dsn.replace("@127.0.0.1:", "@127.0.0.1:1")
    try:
        PostgresOutcomes(wrong).joined("readmission:v1", 0, NOW, ATTRIBUTES)
    except StoreError as error:
        password = postgres_dsn.split(":")[2].split("@")[0]
        assert "cannot read the PostgreSQL store" in str(error)
        assert password not in str(error)
    else:
        raise AssertionError("reading an unreachable store must fail")
