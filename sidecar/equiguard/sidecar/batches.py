"""Reading the batches of /v1/outcomes and /v1/records into records the store keeps.

A malformed body is refused whole (`BadBatch`); a malformed item is counted
as invalid with a reason, and the rest of the batch goes on. Reasons name the
field, never its value: values may identify a patient.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Generic, TypeVar

from equiguard.sidecar.records import REQUEST_ID_RULE, Outcome, Prediction, is_request_id

T = TypeVar("T")

# Records from a clock slightly ahead are accepted; a record from the future is not.
CLOCK_SKEW_SECONDS = 300.0

_PLAIN_OUTCOME = frozenset({"request_id", "label"})
_NO_GROUPS: Mapping[str, str] = MappingProxyType({})

GroupsOf = Callable[[Mapping[str, object]], dict[str, str]]


class BadBatch(ValueError):
    """A body that is not a batch at all; the message is safe to return."""


@dataclass
class Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # the index of each item in the body
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


class _InvalidItem(ValueError):
    pass


def parse_outcomes(body: bytes, attributes: frozenset[str], groups_of: GroupsOf) -> Batch[Outcome]:
    batch: Batch[Outcome] = Batch()
    for index, item in enumerate(_items(body, "outcomes")):
        # The common item, {request_id, label} and nothing else, read inline:
        # feeds send them by the hundred thousand.
        if type(item) is dict and item.keys() == _PLAIN_OUTCOME:
            request_id, label = item["request_id"], item["label"]
            if is_request_id(request_id) and (
                label is True or label is False or (type(label) is int and label in (0, 1))
            ):
                batch.items.append(Outcome(request_id, bool(label), _NO_GROUPS))
                batch.positions.append(index)
                continue
        try:
            entry = _object(item)
            _known(entry, attributes | {"request_id", "label"})
            label = _label(entry.get("label"))
            values = {name: entry[name] for name in attributes if name in entry}
            groups = groups_of(_subgroup_values(values)) if values else {}
            batch.items.append(Outcome(_request_id(entry), label, groups))
            batch.positions.append(index)
        except _InvalidItem as reason:
            batch.invalid.append((index, str(reason)))
    return batch


def parse_records(
    body: bytes,
    attributes: frozenset[str],
    groups_of: GroupsOf,
    revision: str,
    threshold: float,
    now: float,
) -> Batch[tuple[Prediction, bool | None]]:
    batch: Batch[tuple[Prediction, bool | None]] = Batch()
    for index, item in enumerate(_items(body, "records")):
        try:
            entry = _object(item)
            _known(entry, attributes | {"request_id", "score", "label", "time", "revision"})
            score = _score(entry.get("score"))
            prediction = Prediction(
                _request_id(entry),
                _time(entry.get("time"), now),
                _revision(entry.get("revision", revision), revision),
                groups_of(_subgroup_values({name: entry.get(name) for name in attributes})),
                score,
                score >= threshold,
            )
            label = entry.get("label")
            batch.items.append((prediction, None if label is None else _label(label)))
            batch.positions.append(index)
        except _InvalidItem as reason:
            batch.invalid.append((index, str(reason)))
    return batch


def _items(body: bytes, key: str) -> list[object]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadBatch("the body is not valid JSON") from None
    except RecursionError:
        raise BadBatch("the body nests JSON too deeply") from None
    if not isinstance(document, dict) or set(document) != {key}:
        raise BadBatch(f'the body must be a JSON object with one field, "{key}": a list of items')
    items = document[key]
    if not isinstance(items, list):
        raise BadBatch(f'"{key}" must be a list of items')
    return items


def _object(item: object) -> Mapping[str, object]:
    if not isinstance(item, dict):
        raise _InvalidItem("the item is not a JSON object")
    return item


def _known(item: Mapping[str, object], allowed: frozenset[str]) -> None:
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise _InvalidItem(f"unknown field {unknown[0]!r}")


def _request_id(item: Mapping[str, object]) -> str:
    value = item.get("request_id")
    if not is_request_id(value):
        raise _InvalidItem(f"request_id must be a string of {REQUEST_ID_RULE}")
    return value


def _label(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _InvalidItem("label must be 0, 1, true or false")


def _score(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _InvalidItem("score must be a number from 0 to 1")
    return float(value)


def _time(value: object, now: float) -> float:
    if value is None:
        return now
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _InvalidItem("time must be seconds since the epoch or an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise _InvalidItem("time must carry a time zone, such as 2026-01-31T08:00:00Z")
        seconds = parsed.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise _InvalidItem("time must be seconds since the epoch or an ISO 8601 time")
    if seconds > now + CLOCK_SKEW_SECONDS:
        raise _InvalidItem("time is in the future")
    return seconds


def _revision(value: object, served: str) -> str:
    # Only the revision this pod serves: a revision is a label of every
    # statistic and metric, so free text would grow them without bound (and
    # could carry an identifier into /metrics).
    if value != served:
        raise _InvalidItem(
            f"revision must be {served!r}, the revision this sidecar serves (or left out); "
            "send records of another revision to a sidecar that serves it"
        )
    return served


def _subgroup_values(values: Mapping[str, object]) -> Mapping[str, object]:
    for value in values.values():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            raise _InvalidItem("subgroup values must be strings or numbers")
    return values
