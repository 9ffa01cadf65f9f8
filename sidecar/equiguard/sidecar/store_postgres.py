"""The shared prediction store: PostgreSQL, for replicas that serve one model.

Any replica may receive the outcome of a prediction another replica served;
the join is one `UPDATE ... WHERE label IS NULL`, so under concurrency exactly
one replica joins each prediction and becomes its `owner`. Each replica
renews a lease; the labelled rows of a replica silent for longer than the
lease (a pod that was replaced) are adopted by a live one, so they keep
being counted exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import psycopg
from equiguard.contracts.rows import decode_groups, encode_groups
from equiguard.sidecar.records import ItemStatus, Labelled, Outcome, Prediction, ScoredRow
from equiguard.sidecar.store import (
    Upkeep,
    WriteBatch,
    WriteResult,
    first_occurrences,
    join_outcome,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id  text PRIMARY KEY,
    time        double precision NOT NULL,
    revision    text NOT NULL,
    groups      text NOT NULL,
    score       double precision NOT NULL,
    decision    boolean NOT NULL,
    label       boolean,
    labelled_at double precision,
    owner       text
);
CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (time);
CREATE INDEX IF NOT EXISTS predictions_by_owner ON predictions (owner) WHERE owner IS NOT NULL;
-- Added after the first release: a table written before has them added here.
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS scored_groups text;
ALTER TABLE predictions ADD COLUMN IF NOT EXISTS scorer text;
CREATE TABLE IF NOT EXISTS replicas (
    replica_id text PRIMARY KEY,
    heartbeat  double precision NOT NULL
);
"""

_COLUMNS = "request_id, time, revision, groups, score, decision"
_INSERT = (
    f"INSERT INTO predictions ({_COLUMNS}, label, labelled_at, owner, scorer) "
    "SELECT * FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::float8[], "
    "%s::boolean[], %s::boolean[], %s::float8[], %s::text[], %s::text[]) "
    "ON CONFLICT DO NOTHING RETURNING request_id"
)
_SCORED = "time, revision, coalesce(scored_groups, groups), score"


def _prediction(row: tuple[str, float, str, str, float, bool]) -> Prediction:
    request_id, time, revision, groups, score, decision = row
    return Prediction(request_id, time, revision, decode_groups(groups), score, decision)


def _columns(
    predictions: list[Prediction], labels: list[bool | None], now: float, owner: str
) -> list[Sequence[object]]:
    """Column arrays for one `INSERT ... SELECT FROM unnest(...)`."""
    return [
        [p.request_id for p in predictions],
        [p.time for p in predictions],
        [p.revision for p in predictions],
        [encode_groups(p.groups) for p in predictions],
        [p.score for p in predictions],
        [p.decision for p in predictions],
        labels,
        [None if label is None else now for label in labels],
        [None if label is None else owner for label in labels],
        [owner] * len(predictions),  # the scorer: whoever stores a prediction counts its score
    ]


class PostgresStore:
    def __init__(self, dsn: str, owner: str, lease_seconds: float) -> None:
        self._db = psycopg.connect(dsn, autocommit=False)
        self._owner = owner
        self._lease = lease_seconds
        self._leased = False
        with self._db.transaction():
            # Replicas start together: serialise the schema creation.
            self._db.execute("SELECT pg_advisory_xact_lock(4242)")
            self._db.execute(_SCHEMA)

    def write(self, batch: WriteBatch, now: float) -> WriteResult:
        labelled: list[Labelled] = []
        with self._db.transaction():
            scored: list[Prediction] = []
            if batch.predictions:
                inserted = self._insert(batch.predictions, [None] * len(batch.predictions), now)
                for prediction in batch.predictions:
                    if prediction.request_id in inserted:  # a repeat in the batch is not
                        inserted.discard(prediction.request_id)
                        scored.append(prediction)
            record_status = self._insert_records(batch.records, now, labelled, scored)
            outcome_status = self._join(batch.outcomes, now, labelled) if batch.outcomes else []
        return WriteResult(record_status, outcome_status, labelled, scored)

    def _insert(
        self, predictions: list[Prediction], labels: list[bool | None], now: float
    ) -> set[str]:
        """Insert, skipping request ids already stored; the request ids actually inserted."""
        rows = self._db.execute(_INSERT, _columns(predictions, labels, now, self._owner))
        return {request_id for (request_id,) in rows}

    def _insert_records(
        self,
        records: list[tuple[Prediction, bool | None]],
        now: float,
        labelled: list[Labelled],
        scored: list[Prediction],
    ) -> list[ItemStatus]:
        if not records:
            return []
        inserted = self._insert([p for p, _ in records], [label for _, label in records], now)
        statuses: list[ItemStatus] = []
        for prediction, label in records:
            if prediction.request_id in inserted:
                inserted.discard(prediction.request_id)  # a repeat in the batch is a duplicate
                statuses.append(ItemStatus.ACCEPTED)
                scored.append(prediction)
                if label is not None:
                    labelled.append(Labelled(prediction, label))
            else:
                statuses.append(ItemStatus.DUPLICATE)
        return statuses

    def _join(
        self, outcomes: list[Outcome], now: float, labelled: list[Labelled]
    ) -> list[ItemStatus]:
        first, repeats = first_occurrences(outcomes)
        ids = list(first)
        joined = self._db.execute(
            "UPDATE predictions SET label = incoming.label, labelled_at = %s, owner = %s "
            "FROM unnest(%s::text[], %s::boolean[]) AS incoming (request_id, label) "
            "WHERE predictions.request_id = incoming.request_id AND predictions.label IS NULL "
            f"RETURNING {', '.join('predictions.' + c for c in _COLUMNS.split(', '))}",
            (now, self._owner, ids, [outcomes[first[i]].label for i in ids]),
        ).fetchall()
        accepted: set[str] = set()
        for row in joined:
            prediction = _prediction(row)
            item, groups_filled = join_outcome(prediction, outcomes[first[prediction.request_id]])
            if groups_filled:
                self._db.execute(
                    "UPDATE predictions SET groups = %s, "
                    "scored_groups = coalesce(scored_groups, groups) WHERE request_id = %s",
                    (encode_groups(item.prediction.groups), prediction.request_id),
                )
            labelled.append(item)
            accepted.add(prediction.request_id)
        existing = (
            accepted
            if len(accepted) == len(first)
            else {
                request_id
                for (request_id,) in self._db.execute(
                    "SELECT request_id FROM predictions WHERE request_id = ANY(%s)", (ids,)
                )
            }
        )
        statuses: list[ItemStatus] = []
        for position, outcome in enumerate(outcomes):
            if position in repeats:
                statuses.append(ItemStatus.DUPLICATE)
            elif outcome.request_id in accepted:
                statuses.append(ItemStatus.ACCEPTED)
            elif outcome.request_id in existing:
                statuses.append(ItemStatus.DUPLICATE)
            else:
                statuses.append(ItemStatus.UNKNOWN)
        return statuses

    def labelled(self, since: float) -> Iterator[Labelled]:
        # A server-side cursor streams a large history instead of loading it whole.
        with self._db.transaction(), self._db.cursor(name="labelled") as cursor:
            cursor.execute(
                f"SELECT {_COLUMNS}, label FROM predictions "
                "WHERE owner = %s AND label IS NOT NULL AND time >= %s ORDER BY time",
                (self._owner, since),
            )
            for *row, label in cursor:
                yield Labelled(_prediction(tuple(row)), label)

    def scored(self, since: float) -> Iterator[ScoredRow]:
        with self._db.transaction(), self._db.cursor(name="scored") as cursor:
            cursor.execute(
                f"SELECT {_SCORED}, scorer = %s, owner = %s AND label IS NOT NULL "
                "FROM predictions WHERE time >= %s AND (scorer = %s OR owner = %s) ORDER BY time",
                (self._owner, self._owner, since, self._owner, self._owner),
            )
            for time, revision, groups, score, scored, joined in cursor:
                yield ScoredRow(
                    time, revision, decode_groups(groups), score, bool(scored), bool(joined)
                )

    def upkeep(self, now: float, pending_before: float, labelled_before: float) -> Upkeep:
        with self._db.transaction():
            self._db.execute(
                "DELETE FROM predictions WHERE label IS NULL AND time < %s", (pending_before,)
            )
            self._db.execute(
                "DELETE FROM predictions WHERE label IS NOT NULL AND time < %s", (labelled_before,)
            )
            renewed = self._db.execute(
                "UPDATE replicas SET heartbeat = %s WHERE replica_id = %s", (now, self._owner)
            ).rowcount
            if renewed == 0:
                self._db.execute(
                    "INSERT INTO replicas VALUES (%s, %s) ON CONFLICT (replica_id) "
                    "DO UPDATE SET heartbeat = excluded.heartbeat",
                    (self._owner, now),
                )
            silent = [
                replica_id
                for (replica_id,) in self._db.execute(
                    "DELETE FROM replicas WHERE heartbeat < %s RETURNING replica_id",
                    (now - self._lease,),
                )
            ]
            adopted = (
                [
                    Labelled(_prediction(tuple(row)), label, decode_groups(scored_groups))
                    for *row, label, scored_groups in self._db.execute(
                        f"UPDATE predictions SET owner = %s WHERE owner = ANY(%s) "
                        f"AND label IS NOT NULL RETURNING {_COLUMNS}, label, "
                        "coalesce(scored_groups, groups)",
                        (self._owner, silent),
                    )
                ]
                if silent
                else []
            )
            adopted_scores = (
                [
                    ScoredRow(time, revision, decode_groups(groups), score, True, False)
                    for time, revision, groups, score in self._db.execute(
                        f"UPDATE predictions SET scorer = %s WHERE scorer = ANY(%s) "
                        f"RETURNING {_SCORED}",
                        (self._owner, silent),
                    )
                ]
                if silent
                else []
            )
            (pending,) = self._db.execute(
                "SELECT count(*) FROM predictions WHERE label IS NULL"
            ).fetchone() or (0,)
        # No lease row to renew means another replica took us for gone and
        # adopted our rows; but a first start has no lease row either.
        evicted = renewed == 0 and self._leased
        self._leased = True
        return Upkeep(int(pending), adopted, evicted, adopted_scores)

    def close(self) -> None:
        self._db.close()
