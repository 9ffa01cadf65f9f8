"""The default prediction store: one SQLite file in WAL mode on the pod's volume.

WAL with synchronous=NORMAL makes a commit durable against a killed process
(the operating system holds the written log) at the cost of one write per
batch; the writer batches, so that cost is shared by many rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from equiguard.contracts.rows import decode_groups, encode_groups, sqlite_joined
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
    request_id  TEXT PRIMARY KEY,
    time        REAL NOT NULL,
    revision    TEXT NOT NULL,
    groups      TEXT NOT NULL,
    score       REAL NOT NULL,
    decision    INTEGER NOT NULL,
    label       INTEGER,
    labelled_at REAL,
    owner       TEXT,
    scored_groups TEXT  -- the groups at prediction time, once an outcome has filled some in
);
-- On time alone: joining an outcome then rewrites no index entry.
CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (time);
"""

_COLUMNS = "request_id, time, revision, groups, score, decision"
_ROW = tuple[str, float, str, str, float, int]


def _row(prediction: Prediction) -> _ROW:
    return (
        prediction.request_id,
        prediction.time,
        prediction.revision,
        encode_groups(prediction.groups),
        prediction.score,
        int(prediction.decision),
    )


def _prediction(row: tuple[str, float, str, str, float, int]) -> Prediction:
    request_id, time, revision, groups, score, decision = row
    return Prediction(request_id, time, revision, decode_groups(groups), score, bool(decision))


class SqliteStore:
    def __init__(self, path: str, owner: str) -> None:
        # The writer thread is the only user; check_same_thread would only
        # stop the connection from being opened on another thread than used.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._owner = owner
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(predictions)")}
        if "scored_groups" not in columns:  # a file written before scores were kept
            self._db.execute("ALTER TABLE predictions ADD COLUMN scored_groups TEXT")
        self._db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS incoming "
            "(request_id TEXT PRIMARY KEY, label INTEGER NOT NULL)"
        )

    def write(self, batch: WriteBatch, now: float) -> WriteResult:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            scored = self._insert_predictions(batch.predictions) if batch.predictions else []
            labelled: list[Labelled] = []
            record_status = [
                self._insert_record(p, label, now, labelled, scored) for p, label in batch.records
            ]
            outcome_status = self._join(batch.outcomes, now, labelled) if batch.outcomes else []
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return WriteResult(record_status, outcome_status, labelled, scored)

    def _insert_predictions(self, predictions: list[Prediction]) -> list[Prediction]:
        """Insert, skipping request ids already stored; the predictions actually inserted."""
        db = self._db
        (last,) = db.execute("SELECT coalesce(max(rowid), 0) FROM predictions").fetchone()
        changes = db.total_changes
        db.executemany(
            f"INSERT OR IGNORE INTO predictions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            [_row(p) for p in predictions],
        )
        if db.total_changes - changes == len(predictions):
            return predictions
        # A repeated request id (a client's retry): new rows get rowids above
        # the previous largest, so they are exactly the ones inserted.
        return [
            _prediction(row)
            for row in db.execute(
                f"SELECT {_COLUMNS} FROM predictions WHERE rowid > ? ORDER BY rowid", (last,)
            )
        ]

    def _insert_record(
        self,
        prediction: Prediction,
        label: bool | None,
        now: float,
        labelled: list[Labelled],
        scored: list[Prediction],
    ) -> ItemStatus:
        cursor = self._db.execute(
            f"INSERT OR IGNORE INTO predictions ({_COLUMNS}, label, labelled_at, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *_row(prediction),
                None if label is None else int(label),
                None if label is None else now,
                None if label is None else self._owner,
            ),
        )
        if cursor.rowcount != 1:
            return ItemStatus.DUPLICATE
        scored.append(prediction)
        if label is not None:
            labelled.append(Labelled(prediction, label))
        return ItemStatus.ACCEPTED

    def _join(
        self, outcomes: list[Outcome], now: float, labelled: list[Labelled]
    ) -> list[ItemStatus]:
        db = self._db
        first, repeats = first_occurrences(outcomes)
        db.execute("DELETE FROM incoming")
        db.executemany(
            "INSERT INTO incoming VALUES (?, ?)",
            [(request_id, int(outcomes[i].label)) for request_id, i in first.items()],
        )
        joined = db.execute(
            # Written with IN rather than UPDATE ... FROM, which SQLite plans
            # as a scan of every prediction.
            "UPDATE predictions SET labelled_at = ?, owner = ?, label = "
            "(SELECT label FROM incoming WHERE incoming.request_id = predictions.request_id) "
            "WHERE request_id IN (SELECT request_id FROM incoming) AND label IS NULL "
            f"RETURNING {_COLUMNS}",
            (now, self._owner),
        ).fetchall()
        accepted: set[str] = set()
        for row in joined:
            prediction = _prediction(row)
            item, groups_filled = join_outcome(prediction, outcomes[first[prediction.request_id]])
            if groups_filled:
                db.execute(
                    "UPDATE predictions SET groups = ?, "
                    "scored_groups = coalesce(scored_groups, groups) WHERE request_id = ?",
                    (encode_groups(item.prediction.groups), prediction.request_id),
                )
            labelled.append(item)
            accepted.add(prediction.request_id)
        existing = (
            accepted
            if len(accepted) == len(first)
            else {
                request_id
                for (request_id,) in db.execute(
                    "SELECT incoming.request_id FROM incoming JOIN predictions "
                    "ON predictions.request_id = incoming.request_id"
                )
            }
        )
        db.execute("DELETE FROM incoming")
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
        # One file serves one replica, so every labelled row in it is ours.
        cursor = self._db.execute(
            f"SELECT {_COLUMNS}, label FROM predictions "
            "WHERE label IS NOT NULL AND time >= ? ORDER BY time",
            (since,),
        )
        for *row, label in cursor:
            yield Labelled(_prediction(tuple(row)), bool(label))

    def scored(self, since: float) -> Iterator[ScoredRow]:
        # One file serves one replica: every score and outcome in it is ours.
        cursor = self._db.execute(
            "SELECT time, revision, coalesce(scored_groups, groups), score, label IS NOT NULL "
            "FROM predictions WHERE time >= ? ORDER BY time",
            (since,),
        )
        for time, revision, groups, score, joined in cursor:
            yield ScoredRow(time, revision, decode_groups(groups), score, True, bool(joined))

    def joined_page(
        self, revision: str, since: float, until: float, after: int, limit: int
    ) -> tuple[list[tuple[float, str, float, int]], int | None]:
        """Up to `limit` labelled rows of `revision` made in [since, until), after the
        row `after` (0: from the first), in storage order; and the cursor of the next
        page, None when this is the last."""
        rows = list(sqlite_joined(self._db, revision, since, until, after=after, limit=limit + 1))
        following = int(rows[limit - 1][0]) if len(rows) > limit else None
        return [(t, g, s, int(label)) for _, t, g, s, label in rows[:limit]], following

    def upkeep(self, now: float, pending_before: float, labelled_before: float) -> Upkeep:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "DELETE FROM predictions WHERE label IS NULL AND time < ?", (pending_before,)
            )
            db.execute(
                "DELETE FROM predictions WHERE label IS NOT NULL AND time < ?", (labelled_before,)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        (pending,) = db.execute("SELECT count(*) FROM predictions WHERE label IS NULL").fetchone()
        # A file has a single replica: there is no one to adopt from or be adopted by.
        return Upkeep(int(pending), [], evicted=False)

    def close(self) -> None:
        self._db.close()
