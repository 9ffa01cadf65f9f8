"""Scored records read for an audit: CSV with a header, or JSON lines, checked row by row.

Each record has a score in [0, 1], a label 0 or 1 (or, where outcomes may be
missing, none), the model's declared attributes and optionally a timestamp;
an unusable one stops the read with a message that names the file, row and
field.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import numpy as np
from equiguard.engine.spec import ModelSpec

# The times an audit report can print (datetime's range), as seconds since the epoch.
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_SHOWN_CHARACTERS = 40


class RecordError(ValueError):
    """A record is unusable; the message names the file, row and field."""


@dataclass(frozen=True)
class Records:
    scores: np.ndarray
    labels: np.ndarray  # 0 where the outcome is missing (see `has_outcome`)
    attributes: dict[str, list[object]]
    first_time: float | None
    last_time: float | None
    has_outcome: np.ndarray | None = None  # None: every record has its outcome

    @property
    def outcome_known(self) -> np.ndarray:
        if self.has_outcome is None:
            return np.ones(len(self.scores), dtype=bool)
        return self.has_outcome

    def with_outcomes(self) -> Records:
        """Only the records whose outcome is known."""
        known = self.outcome_known
        if known.all():
            return self
        rows = np.flatnonzero(known).tolist()
        return Records(
            self.scores[known],
            self.labels[known],
            {name: [values[i] for i in rows] for name, values in self.attributes.items()},
            self.first_time,
            self.last_time,
        )


def read_records(path: str, model: ModelSpec, *, outcomes_may_be_missing: bool = False) -> Records:
    """Read and check every record; RecordError names the row and field.

    With `outcomes_may_be_missing`, a record without a label (missing or empty)
    is kept with `has_outcome` false; a label that is present must be 0 or 1."""
    names = [a.name for a in model.subgroups.attributes]
    try:
        if path == "-":
            return _collect(
                "stdin", _json_lines(sys.stdin, "stdin"), names, outcomes_may_be_missing
            )
        # utf-8-sig: a byte order mark (as spreadsheets write) is not part of the header.
        with open(path, encoding="utf-8-sig", newline="") as handle:
            if path.endswith((".jsonl", ".ndjson", ".json")):
                return _collect(path, _json_lines(handle, path), names, outcomes_may_be_missing)
            reader = csv.DictReader(handle)
            header = _csv_header(reader, path)
            required = ("score", *names) if outcomes_may_be_missing else ("score", "label", *names)
            for column in required:
                if column not in header:
                    raise RecordError(f'{path}: the header has no column "{column}"')
            return _collect(path, _csv_rows(reader, path), names, outcomes_may_be_missing)
    except UnicodeDecodeError as error:
        raise RecordError(f"{path}: not UTF-8 text (byte {error.start})") from None


def _csv_header(reader: csv.DictReader[str], path: str) -> Sequence[str]:
    try:
        return reader.fieldnames or []
    except csv.Error as error:
        raise RecordError(f"{path}: the header is not valid CSV ({error})") from None


def _csv_rows(reader: csv.DictReader[str], path: str) -> Iterator[tuple[int, Mapping[str, object]]]:
    row = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # Such as a field longer than csv.field_size_limit() (131,072 characters).
            raise RecordError(f"{path} row {row + 1}: not valid CSV ({error})") from None
        row += 1
        yield row, record


def _json_lines(handle: TextIO, source: str) -> Iterator[tuple[int, Mapping[str, object]]]:
    row = 0
    for line in handle:
        if not line.strip():
            continue
        row += 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise RecordError(f"{source} row {row}: not valid JSON ({error.msg})") from None
        except (ValueError, RecursionError):  # an integer of over 4,300 digits, deep nesting
            raise RecordError(f"{source} row {row}: not JSON this audit can read") from None
        if not isinstance(value, Mapping):
            raise RecordError(f"{source} row {row}: must be a JSON object")
        yield row, value


def _collect(
    source: str,
    rows: Iterator[tuple[int, Mapping[str, object]]],
    names: Sequence[str],
    outcomes_may_be_missing: bool,
) -> Records:
    scores: list[float] = []
    labels: list[int] = []
    known: list[bool] = []
    attributes: dict[str, list[object]] = {name: [] for name in names}
    seen = dict.fromkeys(names, False)
    first: float | None = None
    last: float | None = None
    for row, record in rows:
        scores.append(_score(record, source, row))
        missing_label = record.get("label") in (None, "")
        known.append(not (outcomes_may_be_missing and missing_label))
        labels.append(_label(record, source, row) if known[-1] else 0)
        for name in names:
            value = record.get(name)
            seen[name] = seen[name] or name in record
            attributes[name].append(None if value == "" else value)
        raw_time = record.get("timestamp")
        if raw_time not in (None, ""):
            moment = _timestamp(raw_time, source, row)
            first = moment if first is None else min(first, moment)
            last = moment if last is None else max(last, moment)
    if not scores:
        raise RecordError(f"{source}: holds no records")
    missing = [name for name, present in seen.items() if not present]
    if missing:
        raise RecordError(
            f'{source}: no record has the field "{missing[0]}" (a declared attribute)'
        )
    return Records(
        np.array(scores),
        np.array(labels, dtype=np.int64),
        {k: list(v) for k, v in attributes.items()},
        first,
        last,
        None if all(known) else np.array(known, dtype=bool),
    )


def _score(record: Mapping[str, object], source: str, row: int) -> float:
    raw = record.get("score")
    if raw is None or raw == "":
        raise RecordError(f'{source} row {row}, field "score": is missing')
    try:
        score = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(
            f'{source} row {row}, field "score": {_shown(raw)} is not a number'
        ) from None
    except OverflowError:  # an integer too large for a float
        score = math.inf
    if isinstance(raw, bool) or not 0.0 <= score <= 1.0:  # NaN fails the comparison too
        raise RecordError(f'{source} row {row}, field "score": {_shown(raw)} is outside [0, 1]')
    return score


def _label(record: Mapping[str, object], source: str, row: int) -> int:
    raw = record.get("label")
    if isinstance(raw, int | float | str) and not isinstance(raw, bool) and raw in (0, 1, "0", "1"):
        return int(raw)
    if raw is None or raw == "":
        raise RecordError(f'{source} row {row}, field "label": is missing')
    raise RecordError(f'{source} row {row}, field "label": {_shown(raw)} is not 0 or 1')


def _timestamp(raw: object, source: str, row: int) -> float:
    where = f'{source} row {row}, field "timestamp"'
    seconds: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw) if abs(raw) < _LATEST else math.inf
    else:
        text = str(raw)
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise RecordError(
                    f"{where}: {_shown(raw)} is neither ISO 8601 nor seconds since the epoch"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if not _EARLIEST <= seconds <= _LATEST:  # NaN fails the comparison too
        raise RecordError(f"{where}: {_shown(raw)} is not a time from year 1 to 9999")
    return seconds


def _shown(raw: object) -> str:
    """A value as an error quotes it: in full when short, else its start."""
    text = repr(raw)
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "..."
