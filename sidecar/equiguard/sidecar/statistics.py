"""The live subgroup statistics of this replica, kept with the engine's own types.

Per model revision, a sliding `Window`: what /v1/stats, /v1/metrics, /v1/slo
and /metrics read; rebuilt from the store after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np
from equiguard.engine.spec import ModelSpec
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.window import Window
from equiguard.sidecar.records import Labelled
from equiguard.sidecar.store import UNKNOWN_GROUP

_SCALARS = (str, int, float)
CACHE_SIZE = 65536
K = TypeVar("K")
V = TypeVar("V")


class LiveStatistics:
    def __init__(self, spec: ModelSpec, bucket_seconds: float, span_seconds: float) -> None:
        self.layout = CellLayout.from_spec(spec.subgroups)
        self.threshold = spec.threshold
        self.span_seconds = span_seconds
        self.bucket_seconds = bucket_seconds
        self._attributes = tuple(a.name for a in spec.subgroups.attributes)
        dimension = {name: i for i, name in enumerate(self.layout.dimensions)}
        self._attribute_columns = {name: dimension[name] for name in self._attributes}
        # Stored groups are read back through the engine's own assignment: a
        # numeric band is represented by its lower edge, which lies in it.
        self._representative: dict[str, dict[str, object]] = {
            a.name: dict(zip(a.labels, a.edges, strict=True))
            if a.is_numeric
            else {group: group for group in a.values}
            for a in spec.subgroups.attributes
        }
        # Few distinct combinations recur: each is assigned by the engine once.
        self._group_caches: dict[str, dict[object, str]] = {a: {} for a in self._attributes}
        self._row_cache: dict[tuple[str, ...], np.ndarray] = {}
        self.windows: dict[str, Window] = {}
        self.version = 0  # grows with every change, so readers can cache what they derive

    def groups_of(self, values: Mapping[str, object]) -> dict[str, str]:
        """The group of each declared attribute for the raw values of one request."""
        groups: dict[str, str] = {}
        for attribute, cache in self._group_caches.items():
            value = values.get(attribute)
            if not isinstance(value, _SCALARS) or isinstance(value, bool):
                value = None
            group = cache.get(value)
            if group is None:
                cells = self.layout.assign_one({attribute: value})
                group = self.layout.cells[int(cells[self._attribute_columns[attribute]])][1]
                _remember(cache, value, group)
            groups[attribute] = group
        return groups

    def _cell_row(self, groups: tuple[str, ...]) -> np.ndarray:
        row = self._row_cache.get(groups)
        if row is None:
            row = self.layout.assign_one(
                {
                    attribute: self._representative[attribute].get(group)
                    for attribute, group in zip(self._attributes, groups, strict=True)
                }
            )
            _remember(self._row_cache, groups, row)
        return row

    def add(self, labelled: Sequence[Labelled]) -> None:
        """Count labelled predictions."""
        self._count(self.windows, labelled)
        if labelled:
            self.version += 1

    def rebuilt(self, labelled: Iterable[Labelled], chunk: int = 50_000) -> dict[str, Window]:
        """Fresh windows holding `labelled` (read from the store), to `install` in place of ours."""
        windows: dict[str, Window] = {}
        for part in _chunks(labelled, chunk):
            self._count(windows, part)
        return windows

    def install(self, windows: dict[str, Window]) -> None:
        self.windows = windows
        self.version += 1

    def total(self, revision: str, now: float, span_seconds: float) -> Statistics:
        window = self.windows.get(revision)
        if window is None:
            return Statistics.empty(self.layout.cells, self.threshold)
        return window.total(now, span_seconds)

    def _count(self, windows: dict[str, Window], labelled: Sequence[Labelled]) -> None:
        by_revision: dict[str, list[Labelled]] = {}
        for item in labelled:
            by_revision.setdefault(item.prediction.revision, []).append(item)
        for revision, items in by_revision.items():
            rows = self._cell_rows(items)
            scores = np.fromiter((i.prediction.score for i in items), float, len(items))
            labels = np.fromiter((i.label for i in items), np.int64, len(items))
            times = np.fromiter((i.prediction.time for i in items), float, len(items))
            window = windows.get(revision)
            if window is None:
                window = windows[revision] = Window(
                    self.layout.cells,
                    self.threshold,
                    bucket_seconds=self.bucket_seconds,
                    span_seconds=self.span_seconds,
                )
            window.update(times, rows, scores, labels)

    def _cell_rows(self, items: list[Labelled]) -> np.ndarray:
        # Rows read from the store share one mapping per combination of
        # groups: look each mapping up once per batch (the batch keeps it
        # alive, so its id is not reused meanwhile).
        codes: dict[int, int] = {}
        distinct: list[np.ndarray] = []
        positions = np.empty(len(items), np.intp)
        for n, item in enumerate(items):
            groups = item.prediction.groups
            code = codes.get(id(groups))
            if code is None:
                code = codes[id(groups)] = len(distinct)
                key = tuple(groups.get(a, UNKNOWN_GROUP) for a in self._attributes)
                distinct.append(self._cell_row(key))
            positions[n] = code
        return np.stack(distinct)[positions]


def _chunks(items: Iterable[Labelled], size: int) -> Iterator[list[Labelled]]:
    chunk: list[Labelled] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) >= CACHE_SIZE:
        cache.clear()  # rare: cheaper than tracking recency on every hit
    cache[key] = value
