"""The live subgroup statistics of this replica, kept with the engine's own types.

Per model revision, a sliding `Window` of labelled statistics: what /v1/stats,
/v1/metrics, /v1/slo and /metrics read; and a `ScoreWindow` of every
prediction's score and label coverage: what /v1/scores reads. Both are
rebuilt from the store after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np
from equiguard.engine.score_window import ScoreWindow
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.spec import ModelSpec
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.window import Window
from equiguard.sidecar.records import Labelled, Prediction, ScoredRow
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
        self.score_windows: dict[str, ScoreWindow] = {}
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
        """Count labelled predictions, and their outcomes in the label coverage of the scores."""
        self._count(self.windows, labelled)
        self._cover(
            self.score_windows,
            [(i.prediction.revision, i.prediction.time, i.score_groups) for i in labelled],
        )
        if labelled:
            self.version += 1

    def add_scores(self, predictions: Sequence[Prediction]) -> None:
        """Count the scores of newly stored predictions."""
        self._score(
            self.score_windows, [(p.revision, p.time, p.groups, p.score) for p in predictions]
        )

    def add_scored_rows(self, rows: Sequence[ScoredRow]) -> None:
        """Count stored predictions this replica takes over (adopted from a silent replica)."""
        self._score_rows(self.score_windows, rows)

    def rebuilt(self, labelled: Iterable[Labelled], chunk: int = 50_000) -> dict[str, Window]:
        """Fresh windows holding `labelled` (read from the store), to `install` in place of ours."""
        windows: dict[str, Window] = {}
        for part in _chunks(labelled, chunk):
            self._count(windows, part)
        return windows

    def rebuilt_scores(
        self, rows: Iterable[ScoredRow], chunk: int = 50_000
    ) -> dict[str, ScoreWindow]:
        """Fresh score windows holding `rows` (read from the store), to `install`."""
        windows: dict[str, ScoreWindow] = {}
        for part in _chunks(rows, chunk):
            self._score_rows(windows, part)
        return windows

    def install(self, windows: dict[str, Window], score_windows: dict[str, ScoreWindow]) -> None:
        self.windows = windows
        self.score_windows = score_windows
        self.version += 1

    def total(self, revision: str, now: float, span_seconds: float) -> Statistics:
        window = self.windows.get(revision)
        if window is None:
            return Statistics.empty(self.layout.cells, self.threshold)
        return window.total(now, span_seconds)

    def scores_total(self, revision: str, now: float, span_seconds: float) -> ScoreStatistics:
        window = self.score_windows.get(revision)
        if window is None:
            return ScoreStatistics.empty(self.layout.cells, self.threshold)
        return window.total(now, span_seconds)

    def _score_rows(self, windows: dict[str, ScoreWindow], rows: Sequence[ScoredRow]) -> None:
        self._score(windows, [(r.revision, r.time, r.groups, r.score) for r in rows if r.scored])
        self._cover(windows, [(r.revision, r.time, r.groups) for r in rows if r.joined])

    def _score(
        self,
        windows: dict[str, ScoreWindow],
        scored: Sequence[tuple[str, float, Mapping[str, str], float]],
    ) -> None:
        for revision, items in _by_revision(scored).items():
            rows = self._cell_rows([groups for _, _, groups, _ in items])
            times = np.fromiter((t for _, t, _, _ in items), float, len(items))
            scores = np.fromiter((s for _, _, _, s in items), float, len(items))
            self._score_window(windows, revision).update(times, rows, scores)

    def _cover(
        self,
        windows: dict[str, ScoreWindow],
        joined: Sequence[tuple[str, float, Mapping[str, str]]],
    ) -> None:
        for revision, items in _by_revision(joined).items():
            rows = self._cell_rows([groups for _, _, groups in items])
            times = np.fromiter((t for _, t, _ in items), float, len(items))
            self._score_window(windows, revision).record_outcomes(times, rows)

    def _score_window(self, windows: dict[str, ScoreWindow], revision: str) -> ScoreWindow:
        window = windows.get(revision)
        if window is None:
            window = windows[revision] = ScoreWindow(
                self.layout.cells,
                self.threshold,
                bucket_seconds=self.bucket_seconds,
                span_seconds=self.span_seconds,
            )
        return window

    def _count(self, windows: dict[str, Window], labelled: Sequence[Labelled]) -> None:
        by_revision: dict[str, list[Labelled]] = {}
        for item in labelled:
            by_revision.setdefault(item.prediction.revision, []).append(item)
        for revision, items in by_revision.items():
            rows = self._cell_rows([i.prediction.groups for i in items])
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

    def _cell_rows(self, all_groups: Sequence[Mapping[str, str]]) -> np.ndarray:
        # Rows read from the store share one mapping per combination of
        # groups: look each mapping up once per batch (the batch keeps it
        # alive, so its id is not reused meanwhile).
        codes: dict[int, int] = {}
        distinct: list[np.ndarray] = []
        positions = np.empty(len(all_groups), np.intp)
        for n, groups in enumerate(all_groups):
            code = codes.get(id(groups))
            if code is None:
                code = codes[id(groups)] = len(distinct)
                key = tuple(groups.get(a, UNKNOWN_GROUP) for a in self._attributes)
                distinct.append(self._cell_row(key))
            positions[n] = code
        return np.stack(distinct)[positions]


R = TypeVar("R", bound=tuple[object, ...])
T = TypeVar("T")


def _by_revision(items: Sequence[R]) -> dict[str, list[R]]:
    by_revision: dict[str, list[R]] = {}
    for item in items:
        by_revision.setdefault(str(item[0]), []).append(item)
    return by_revision


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
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
