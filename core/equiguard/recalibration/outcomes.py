"""The joined outcomes of a window, read from the prediction store, and the time split.

The sidecar writes the store (equiguard.sidecar.store_sqlite and
store_postgres); this module only reads it, with the sidecar's own reader of
its `predictions` table (equiguard.contracts.rows): the labelled rows of one
revision whose prediction time lies in the window, whichever replica joined
them. A SQLite file is opened read-only; a PostgreSQL session is read-only.
The SQLite file of a model's pod is on its own volume, which a Job cannot
mount: the Job reads it through the sidecar's API instead (SidecarOutcomes).
"""

from __future__ import annotations

import json
import math
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import psycopg
from equiguard.contracts.rows import (
    JOINED_PAGE_DEFAULT,
    JoinedPage,
    decode_groups,
    encode_groups,
    postgres_joined,
    sqlite_joined,
)
from equiguard.engine.spec import UNKNOWN

# A window read through a sidecar's API is held in memory: at most this many rows.
MAX_ROWS = 5_000_000


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
    """Rows of (time, encoded groups, score, label) as arrays in time order (rows of one
    time in the order read); absent attributes are unknown."""
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
    read = Outcomes(
        np.array(times, dtype=np.float64),
        np.array(scores, dtype=np.float64),
        np.array(labels, dtype=np.int64),
        {name: np.array(values, dtype=object) for name, values in columns.items()},
    )
    # A SQLite store and a sidecar's pages give storage order.
    return read.take(np.argsort(read.times, kind="stable"))


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
            found = sqlite_joined(db, revision, since, until)
            return outcomes_from_rows(((t, g, s, label) for _, t, g, s, label in found), attributes)
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
                    found = postgres_joined(cursor, revision, since, until)
                    return outcomes_from_rows(found, attributes)
        except psycopg.Error as error:
            # The message of a connection error can carry the DSN's host but not its password.
            raise StoreError(f"cannot read the PostgreSQL store: {error}") from None


class SidecarOutcomes:
    """The joined outcomes a sidecar keeps in its pod's own SQLite file, through its API.

    GET /v1/outcomes/joined with the sidecar's bearer token, page after page
    (equiguard.contracts.rows.JoinedPage) until the last. For a model of one
    replica: behind its Service the one pod that holds the rows answers.
    """

    def __init__(self, url: str, token: str, page_size: int = JOINED_PAGE_DEFAULT,
                 timeout: float = 60.0, max_rows: int = MAX_ROWS) -> None:  # fmt: skip
        self.url = url.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.timeout = timeout
        self.max_rows = max_rows

    def joined(
        self, revision: str, since: float, until: float, attributes: Sequence[str]
    ) -> Outcomes:
        found: list[tuple[float, str, float, object]] = []
        after = "0"
        while True:
            query = urllib.parse.urlencode({
                "revision": revision, "since": repr(since), "until": repr(until),
                "after": after, "limit": self.page_size,
            })  # fmt: skip
            page = self._page(f"{self.url}/v1/outcomes/joined?{query}")
            found += [(t, encode_groups(g), s, label) for t, g, s, label in page.rows]
            if len(found) > self.max_rows:
                raise StoreError(f"the sidecar holds more than {self.max_rows} joined outcomes")
            if page.next is None:
                return outcomes_from_rows(found, attributes)
            after = page.next

    def _page(self, url: str) -> JoinedPage:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode(errors="replace").strip()
            raise StoreError(f"the sidecar at {self.url} answered {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise StoreError(f"cannot read the sidecar at {self.url}: {error}") from None
        try:
            return JoinedPage.from_dict(document)
        except (ValueError, TypeError, AttributeError) as error:
            raise StoreError(f"the sidecar at {self.url} answered a bad page: {error}") from None


def open_source(store: str, token: str = "") -> OutcomeSource:
    """A DSN (postgresql://...), a sidecar's URL (http[s]://..., with its token), or the
    path of the sidecar's SQLite file."""
    if store.startswith(("postgresql://", "postgres://")):
        return PostgresOutcomes(store)
    if store.startswith(("http://", "https://")):
        if not token:
            raise StoreError(f"reading the sidecar at {store} needs its bearer token")
        return SidecarOutcomes(store, token)
    return SqliteOutcomes(store)
