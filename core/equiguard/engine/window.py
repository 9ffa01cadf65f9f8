"""A sliding time window: a ring of epoch-aligned buckets of Statistics.

Buckets are aligned to the epoch (bucket index = floor(t / width)), so the
windows of two pods with the same width sum exactly. The clock is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from equiguard.engine.stats import DEFAULT_SCORE_BINS, Statistics
from equiguard.engine.subgroups import CellKey

FORMAT = "equiguard.window/v1"


class Window:
    def __init__(
        self,
        cells: Sequence[CellKey],
        threshold: float,
        *,
        bucket_seconds: float,
        span_seconds: float,
        score_bins: int = DEFAULT_SCORE_BINS,
    ) -> None:
        if not bucket_seconds > 0 or not span_seconds >= bucket_seconds:
            raise ValueError("need bucket_seconds > 0 and span_seconds >= bucket_seconds")
        self.cells = tuple(cells)
        self.threshold = threshold
        self.score_bins = score_bins
        self.bucket_seconds = float(bucket_seconds)
        self.span_seconds = float(span_seconds)
        self.bucket_count = math.ceil(span_seconds / bucket_seconds)
        self._buckets: dict[int, Statistics] = {}
        self._newest: int | None = None

    def update(
        self, times: np.ndarray, cell_rows: np.ndarray, scores: np.ndarray, labels: np.ndarray
    ) -> int:
        """Add events at their times (seconds); returns how many were older than the ring."""
        times = np.asarray(times, dtype=np.float64)
        if len(times) != len(scores):
            raise ValueError("times and scores must describe the same rows")
        if len(times) == 0:
            return 0
        if not np.isfinite(times).all():
            raise ValueError("times must be finite")
        index = np.floor(times / self.bucket_seconds).astype(np.int64)
        newest = int(index.max()) if self._newest is None else max(self._newest, int(index.max()))
        oldest_kept = newest - self.bucket_count + 1
        self._newest = newest
        for stale in [i for i in self._buckets if i < oldest_kept]:
            del self._buckets[stale]
        kept = index >= oldest_kept
        labels, scores, cell_rows = np.asarray(labels), np.asarray(scores), np.asarray(cell_rows)
        for bucket in np.unique(index[kept]).tolist():
            rows = index == bucket
            target = self._buckets.get(bucket)
            if target is None:
                target = self._buckets[bucket] = Statistics.empty(
                    self.cells, self.threshold, self.score_bins
                )
            target.update(cell_rows[rows], scores[rows], labels[rows])
        return int((~kept).sum())

    def total(self, now: float, span_seconds: float | None = None) -> Statistics:
        """Sum of the buckets overlapping (now - span, now]."""
        span = self.span_seconds if span_seconds is None else span_seconds
        current = math.floor(now / self.bucket_seconds)
        first = self.first_bucket(now, span)
        total = Statistics.empty(self.cells, self.threshold, self.score_bins)
        for index, bucket in self._buckets.items():
            if first <= index <= current:
                total.merge(bucket)
        return total

    def first_bucket(self, now: float, span_seconds: float) -> int:
        """The oldest bucket that `total(now, span_seconds)` sums."""
        return (
            math.floor(now / self.bucket_seconds)
            - math.ceil(span_seconds / self.bucket_seconds)
            + 1
        )

    def holds_data_before(self, bucket: int, since: int) -> bool:
        """Whether any bucket from `since` up to (not including) `bucket` holds a count."""
        return any(
            since <= index < bucket and not stats.is_empty()
            for index, stats in self._buckets.items()
        )

    def bucket_indices(self) -> list[int]:
        return sorted(self._buckets)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "bucketSeconds": self.bucket_seconds,
            "spanSeconds": self.span_seconds,
            "threshold": self.threshold,
            "scoreBins": self.score_bins,
            "cells": [[d, g] for d, g in self.cells],
            "buckets": [
                {"index": i, "stats": self._buckets[i].to_dict()}
                for i in sorted(self._buckets)
                if not self._buckets[i].is_empty()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Window:
        if data.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, got {data.get('format')!r}")
        raw_cells = data.get("cells")
        if not isinstance(raw_cells, list):
            raise ValueError("cells: must be a list of [dimension, group] pairs")
        window = cls(
            [(str(d), str(g)) for d, g in raw_cells],
            _number(data, "threshold"),
            bucket_seconds=_number(data, "bucketSeconds"),
            span_seconds=_number(data, "spanSeconds"),
            score_bins=int(_number(data, "scoreBins")),
        )
        empty = Statistics.empty(window.cells, window.threshold, window.score_bins)
        buckets = data.get("buckets")
        if not isinstance(buckets, list):
            raise ValueError("buckets: must be a list")
        for i, item in enumerate(buckets):
            if not isinstance(item, Mapping) or not isinstance(item.get("index"), int):
                raise ValueError(f"buckets[{i}]: needs an integer index and stats")
            stats_data = item.get("stats")
            if not isinstance(stats_data, Mapping):
                raise ValueError(f"buckets[{i}].stats: must be a statistics object")
            stats = Statistics.from_dict(stats_data)
            if not stats.same_layout(empty):
                raise ValueError(
                    f"buckets[{i}].stats: cells, threshold or score bins differ from the window's"
                )
            window._buckets[int(item["index"])] = stats
        if window._buckets:
            window._newest = max(window._buckets)
        return window


def _number(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: must be a number")
    return float(value)
