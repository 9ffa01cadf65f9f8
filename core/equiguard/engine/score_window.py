"""A sliding time window of every prediction's score: a ring of epoch-aligned ScoreStatistics.

The sibling of `window.Window`, with the same bucket alignment (bucket index
= floor(t / width)), so the score windows of two pods with the same width
sum exactly, and their buckets line up with the labelled windows'. A
prediction is added at its own time; an outcome that joins it later is
counted (`labelled`) in the bucket of the prediction's time, never of the
outcome's. The clock is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.stats import DEFAULT_SCORE_BINS
from equiguard.engine.subgroups import CellKey


class ScoreWindow:
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
        self._buckets: dict[int, ScoreStatistics] = {}
        self._newest: int | None = None

    def update(self, times: np.ndarray, cell_rows: np.ndarray, scores: np.ndarray) -> int:
        """Add predictions at their times (seconds); returns how many were older than the ring."""
        scores = np.asarray(scores, dtype=np.float64)
        rows = np.asarray(cell_rows)
        return self._each_bucket(
            times, len(scores), lambda bucket, kept: bucket.update(rows[kept], scores[kept])
        )

    def record_outcomes(self, times: np.ndarray, cell_rows: np.ndarray) -> int:
        """Count outcomes joined to predictions made at `times`; returns how many were too old."""
        rows = np.asarray(cell_rows)
        return self._each_bucket(
            times, len(rows), lambda bucket, kept: bucket.record_outcomes(rows[kept])
        )

    def _each_bucket(
        self, times: np.ndarray, n: int, add: Callable[[ScoreStatistics, np.ndarray], None]
    ) -> int:
        times = np.asarray(times, dtype=np.float64)
        if len(times) != n:
            raise ValueError("times and cell rows must describe the same rows")
        if n == 0:
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
        for bucket in np.unique(index[kept]).tolist():
            target = self._buckets.get(bucket)
            if target is None:
                target = self._buckets[bucket] = ScoreStatistics.empty(
                    self.cells, self.threshold, self.score_bins
                )
            add(target, index == bucket)
        return int((~kept).sum())

    def total(self, now: float, span_seconds: float | None = None) -> ScoreStatistics:
        """Sum of the buckets overlapping (now - span, now], as `Window.total` sums them."""
        span = self.span_seconds if span_seconds is None else span_seconds
        current = math.floor(now / self.bucket_seconds)
        first = current - math.ceil(span / self.bucket_seconds) + 1
        total = ScoreStatistics.empty(self.cells, self.threshold, self.score_bins)
        for index, bucket in self._buckets.items():
            if first <= index <= current:
                total.merge(bucket)
        return total

    def bucket_indices(self) -> list[int]:
        return sorted(self._buckets)
