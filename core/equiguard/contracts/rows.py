"""The sidecar's stored prediction rows: how their groups are encoded and how they are read.

The sidecar's stores (SQLite and PostgreSQL) keep a prediction's groups as one
JSON object with sorted keys; the recalibration Job reads the same rows. Both
use the encoding functions and the readers of a revision's joined outcomes
below, one statement per store kind. The Job may also read the rows through
the sidecar's API, as JoinedPage documents.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol


def encode_groups(groups: Mapping[str, str]) -> str:
    return _encode(tuple(sorted(groups.items())))


@functools.lru_cache(maxsize=65536)
def _encode(items: tuple[tuple[str, str], ...]) -> str:
    # Few combinations of groups recur: encode each once.
    return json.dumps(dict(items), separators=(",", ":"))


@functools.lru_cache(maxsize=65536)
def decode_groups(text: str) -> Mapping[str, str]:
    # Many rows share one combination of groups: decode each combination once
    # (read-only, since the one mapping is shared by all those rows).
    groups: dict[str, str] = json.loads(text)
    return MappingProxyType(groups)


# A revision's joined outcomes in a window, as the stores' `predictions` table
# holds them (its schema is the sidecar's: equiguard.sidecar.store_sqlite and
# store_postgres). The sidecar pages through them for GET /v1/outcomes/joined,
# the recalibration Job reads them whole; both with the one statement of the
# store's kind. A row leaves with its encoded groups and never its request id.
_SQLITE_JOINED = (
    "SELECT rowid, time, groups, score, label FROM predictions "
    "WHERE rowid > ? AND label IS NOT NULL AND revision = ? AND time >= ? AND time < ? "
    "ORDER BY rowid LIMIT ?"
)
_POSTGRES_JOINED = (
    "SELECT time, groups, score, label FROM predictions "
    "WHERE label IS NOT NULL AND revision = %s AND time >= %s AND time < %s ORDER BY time"
)


class Database(Protocol):
    """The one call the readers make: a DB-API connection's or cursor's `execute`.

    The caller hands in its own (sqlite3, psycopg), so no driver is imported here.
    """

    def execute(self, query: str, parameters: Sequence[object], /) -> Iterable[Any]: ...


def sqlite_joined(
    db: Database, revision: str, since: float, until: float, *, after: int = 0, limit: int = -1
) -> Iterable[tuple[int, float, str, float, int]]:
    """(rowid, time, encoded groups, score, label) of the labelled predictions of
    `revision` made in [since, until) stored after row `after`, in storage order;
    at most `limit` of them (SQLite reads a negative limit as none)."""
    rows: Iterable[tuple[int, float, str, float, int]] = db.execute(
        _SQLITE_JOINED, (after, revision, since, until, limit)
    )
    return rows


def postgres_joined(
    cursor: Database, revision: str, since: float, until: float
) -> Iterable[tuple[float, str, float, bool]]:
    """(time, encoded groups, score, label) of the labelled predictions of `revision`
    made in [since, until), in time order; a named (server-side) cursor streams them."""
    rows: Iterable[tuple[float, str, float, bool]] = cursor.execute(
        _POSTGRES_JOINED, (revision, since, until)
    )
    return rows


# The sidecar's GET /v1/outcomes/joined: one page of a revision's labelled
# predictions, for the recalibration Job of a model whose store is the pod's own
# SQLite file. A row is (prediction time, groups, score, label): no request id,
# no payload. `next` is an opaque cursor for the following page, None at the end.
JOINED_FORMAT = "equiguard.joined-outcomes/v1"
JOINED_PAGE_DEFAULT = 5000
JOINED_PAGE_MAX = 20000

JoinedRow = tuple[float, Mapping[str, str], float, int]


@dataclass(frozen=True)
class JoinedPage:
    revision: str
    rows: tuple[JoinedRow, ...]
    next: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": JOINED_FORMAT,
            "revision": self.revision,
            "rows": [[t, dict(g), s, int(label)] for t, g, s, label in self.rows],
            "next": self.next,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> JoinedPage:
        """The page a sidecar answered; ValueError names what is malformed."""
        if document.get("format") != JOINED_FORMAT:
            raise ValueError(f"not a {JOINED_FORMAT} page: format {document.get('format')!r}")
        after = document.get("next")
        if after is not None and not isinstance(after, str):
            raise ValueError("next must be a string or null")
        rows: list[JoinedRow] = []
        for row in document.get("rows", []):
            if not isinstance(row, list) or len(row) != 4 or not isinstance(row[1], dict):
                raise ValueError("each row must be [time, {attribute: group}, score, label]")
            time, groups, score, label = row
            if label not in (0, 1) or isinstance(label, bool):
                raise ValueError("a row's label must be 0 or 1")
            rows.append((float(time), {str(k): str(v) for k, v in groups.items()},
                         float(score), int(label)))  # fmt: skip
        return cls(str(document.get("revision", "")), tuple(rows), after)
