"""The joined outcomes of a window, read from the prediction store, and the time split.

The sidecar writes the store (equiguard.sidecar.store_sqlite and
store_postgres); this module only reads it, with one query over the shared
`predictions` table: the labelled rows of one revision whose prediction time
lies in the window, whichever replica joined them. A SQLite file is opened
read-only; a PostgreSQL session is read-only.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import psycopg
from equiguard.contracts.rows import decode_groups
from equiguard.engine.spec import UNKNOWN

_QUERY = (
    "SELECT time, groups, score, label FROM predictions "
    "WHERE label IS NOT NULL AND revision = {p} AND time >= {p} AND time < {p} ORDER BY time"
)


class StoreError(Exception):
    """The store cannot be read (missing file, unreachable server, wrong schema)."""


@dataclass(frozen=True)
class Outcomes:
    """Labelled predictions, in time order: one array per column."""

    times: np.ndarray  # float64, seconds since the epoch (prediction time)
    scores: np.ndarray  # float64 in [0, 1]
    labels: np.ndarray  # int64, 0 or 1
    groups: Mapping[str, np.ndarray]  # attribute -> each row's stored group (object array)

    def __len__(self) -> int:
        return len(self.times)

    def take(self, rows: np.ndarray) -> Outcomes:
        return Outcomes(
            self.times[rows],
            self.scores[rows],
            self.labels[rows],
            {name: column[rows] for name, column in self.groups.items()},
        )


def outcomes_from_rows(
    rows: Iterable[tuple[float, str, float, object]], attributes: Sequence[str]
) -> Outcomes:
    """Rows of (time, encoded groups, score, label) as arrays; absent attributes are unknown."""
    times: list[float] = []
    scores: list[float] = []
    labels: list[int] = []
    columns: dict[str, list[str]] = {name: [] for name in attributes}
    for time, encoded, score, label in rows:
        times.append(float(time))
        scores.append(float(score))
        labels.append(int(bool(label)))
        groups = decode_groups(encoded)
        for name in attributes:
            columns[name].append(groups.get(name, UNKNOWN))
    return Outcomes(
        np.array(times, dtype=np.float64),
        np.array(scores, dtype=np.float64),
        np.array(labels, dtype=np.int64),
        {name: np.array(values, dtype=object) for name, values in columns.items()},
    )


def split_by_time(outcomes: Outcomes, holdout_fraction: float) -> tuple[Outcomes, Outcomes]:
    """The older rows to fit on and the newest `holdout_fraction` of rows to judge on.

    The cut is a prediction time: rows at the cut go to the holdout, so no
    held-out row is older than a fitted one.
    """
    n = len(outcomes)
    held = math.ceil(n * holdout_fraction)
    if n == 0 or held == 0:
        return outcomes, outcomes.take(np.zeros(n, dtype=bool))
    order = np.argsort(outcomes.times, kind="stable")
    ordered = outcomes.take(order)
    cut = ordered.times[n - held]
    fit = ordered.times < cut
    return ordered.take(fit), ordered.take(~fit)


class OutcomeSource(Protocol):
    def joined(
        self, revision: str, since: float, until: float, attributes: Sequence[str]
    ) -> Outcomes:
        """The labelled predictions of `revision` made in [since, until)."""


class SqliteOutcomes:
    def __init__(self, path: str) -> None:
        self.path = path

    def joined(
        self, revision: str, since: float, until: float, attributes: Sequence[str]
    ) -> Outcomes:
        try:
            # mode=ro: never create the file nor change it; WAL readers still see
            # what the sidecar committed.
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the SQLite store {self.path}: {error}") from None
        try:
            cursor = db.execute(_QUERY.format(p="?"), (revision, since, until))
            return outcomes_from_rows(cursor, attributes)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the SQLite store {self.path}: {error}") from None
        finally:
            db.close()


class PostgresOutcomes:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def joined(
        self, revision: str, since: float, until: float, attributes: Sequence[str]
    ) -> Outcomes:
        try:
            with psycopg.connect(self.dsn) as db:
                db.read_only = True
                with db.cursor(name="recalibration") as cursor:
                    cursor.execute(_QUERY.format(p="%s"), (revision, since, until))
                    return outcomes_from_rows(cursor, attributes)
        except psycopg.Error as error:
            # The message of a connection error can carry the DSN's host but not its password.
            raise StoreError(f"cannot read the PostgreSQL store: {error}") from None


def open_source(store: str) -> OutcomeSource:
    """A DSN (postgresql://...) or the path of the sidecar's SQLite file."""
    if store.startswith(("postgresql://", "postgres://")):
        return PostgresOutcomes(store)
    return SqliteOutcomes(store)
