"""Score rows in a shared PostgreSQL: each counted once, by the replica that stored it.

Needs no cluster: a private PostgreSQL server from Debian's packages
(helpers.postgres). The label coverage goes with the replica that joined the
outcome, as the labelled rows do; a silent replica's scores are adopted.
"""

from __future__ import annotations

from types import MappingProxyType

from equiguard.sidecar.records import Outcome, Prediction, ScoredRow
from equiguard.sidecar.store import WriteBatch
from equiguard.sidecar.store_postgres import PostgresStore

UNKNOWN = {"race": "unknown"}


def prediction(request_id: str, time: float, score: float) -> Prediction:
    return Prediction(request_id, time, "v1", UNKNOWN, score, score >= 0.5)


def rows(store: PostgresStore) -> list[tuple[float, dict[str, str], float, bool, bool]]:
    return [(r.time, dict(r.groups), r.score, r.scored, r.joined) for r in store.scored(0.0)]


def test_scores_are_counted_by_their_replica_and_coverage_by_the_joining_one(
    postgres_dsn: str,
) -> None:
    a = PostgresStore(postgres_dsn, "replica-a", lease_seconds=60)
    b = PostgresStore(postgres_dsn, "replica-b", lease_seconds=60)
    try:
        stored = a.write(
            WriteBatch(
                predictions=[
                    prediction("p1", 10.0, 0.2),
                    prediction("p2", 20.0, 0.7),
                    prediction("p1", 30.0, 0.9),  # a repeated request id: not stored again
                ]
            ),
            now=40.0,
        )
        assert [p.request_id for p in stored.scored] == ["p1", "p2"]
        again = b.write(WriteBatch(predictions=[prediction("p2", 21.0, 0.1)]), now=41.0)
        assert again.scored == []
        # The outcome fills in the race: the score stays counted where it was made.
        joined = b.write(
            WriteBatch(outcomes=[Outcome("p1", True, MappingProxyType({"race": "White"}))]),
            now=50.0,
        )
        assert joined.labelled[0].score_groups == UNKNOWN
        assert rows(a) == [(10.0, UNKNOWN, 0.2, True, False), (20.0, UNKNOWN, 0.7, True, False)]
        assert rows(b) == [(10.0, UNKNOWN, 0.2, False, True)]
        # A goes silent; B adopts its scores (and its labelled rows, of which it has none).
        a.upkeep(now=60.0, pending_before=0.0, labelled_before=0.0)
        upkeep = b.upkeep(now=200.0, pending_before=0.0, labelled_before=0.0)
        assert sorted(upkeep.adopted_scores, key=lambda r: r.time) == [
            ScoredRow(10.0, "v1", UNKNOWN, 0.2, True, False),
            ScoredRow(20.0, "v1", UNKNOWN, 0.7, True, False),
        ]
        assert rows(b) == [(10.0, UNKNOWN, 0.2, True, True), (20.0, UNKNOWN, 0.7, True, False)]
    finally:
        a.close()
        b.close()
