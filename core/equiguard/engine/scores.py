"""Label-free sufficient statistics: every prediction's binned score, per cell.

The labelled `Statistics` only see predictions whose outcome has arrived;
an early warning must see every prediction as it is made. `ScoreStatistics`
keeps, per cell, how many predictions fell in each score bin (the bins of
`stats.score_bin`, so the threshold is a bin edge), the sum of their scores
per bin, and how many of them have had their outcome joined. Like
`Statistics`, they merge by addition, so pods and time buckets sum exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from equiguard.engine.stats import (
    DEFAULT_SCORE_BINS,
    Statistics,
    read_header,
    score_bin,
    threshold_bin,
)
from equiguard.engine.subgroups import CellKey

FORMAT = "equiguard.scores/v1"


class ScoreStatistics:
    """Mutable accumulator of predictions' scores, labelled or not."""

    __slots__ = ("cells", "counts", "labelled", "score_bins", "score_sums", "threshold")

    def __init__(
        self,
        cells: Sequence[CellKey],
        threshold: float,
        score_bins: int,
        counts: np.ndarray,
        score_sums: np.ndarray,
        labelled: np.ndarray,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold {threshold!r} is outside [0, 1]")
        if score_bins < 1:
            raise ValueError("score_bins must be at least 1")
        shape = (len(cells), score_bins + 1)
        for name, array in (("counts", counts), ("scoreSums", score_sums)):
            if np.shape(array) != shape:
                raise ValueError(f"{name}: has shape {np.shape(array)}, expected {shape}")
        if np.shape(labelled) != (len(cells),):
            raise ValueError(f"labelled: has shape {np.shape(labelled)}, expected {(len(cells),)}")
        self.cells: tuple[CellKey, ...] = tuple((str(d), str(g)) for d, g in cells)
        self.threshold = float(threshold)
        self.score_bins = int(score_bins)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.score_sums = np.asarray(score_sums, dtype=np.float64)
        self.labelled = np.asarray(labelled, dtype=np.int64)

    @classmethod
    def empty(
        cls, cells: Sequence[CellKey], threshold: float, score_bins: int = DEFAULT_SCORE_BINS
    ) -> ScoreStatistics:
        shape = (len(cells), score_bins + 1)
        return cls(
            cells,
            threshold,
            score_bins,
            np.zeros(shape, np.int64),
            np.zeros(shape),
            np.zeros(len(cells), np.int64),
        )

    @classmethod
    def of_labelled(cls, stats: Statistics) -> ScoreStatistics:
        """The scores of labelled statistics (every prediction in them is labelled)."""
        counts = stats.histogram.sum(axis=1)
        return cls(
            stats.cells,
            stats.threshold,
            stats.score_bins,
            counts,
            stats.score_sums.sum(axis=1),
            counts.sum(axis=1),
        )

    def update(self, cell_rows: np.ndarray, scores: np.ndarray) -> None:
        """Add predictions: cell_rows (n, dimensions) from CellLayout.assign, scores in [0, 1]."""
        scores = np.asarray(scores, dtype=np.float64)
        cell_rows = self._rows(cell_rows, len(scores))
        if len(scores) == 0:
            return
        if not (scores.min() >= 0.0 and scores.max() <= 1.0):  # also rejects NaN
            raise ValueError("scores must lie in [0, 1]")
        width = self.score_bins + 1
        index = (cell_rows * width).ravel() + np.repeat(
            score_bin(scores, self.threshold, self.score_bins), cell_rows.shape[1]
        )
        size = len(self.cells) * width
        self.counts += np.bincount(index, minlength=size).reshape(self.counts.shape)
        self.score_sums += np.bincount(index, np.repeat(scores, cell_rows.shape[1]), size).reshape(
            self.score_sums.shape
        )

    def record_outcomes(self, cell_rows: np.ndarray) -> None:
        """Count outcomes joined to predictions already added (for label coverage)."""
        cell_rows = self._rows(cell_rows, None)
        self.labelled += np.bincount(cell_rows.ravel(), minlength=len(self.cells))

    def _rows(self, cell_rows: np.ndarray, n: int | None) -> np.ndarray:
        rows = np.asarray(cell_rows, dtype=np.int64)
        if rows.ndim != 2 or (n is not None and rows.shape[0] != n):
            raise ValueError("cell_rows and scores must describe the same rows")
        if rows.size and (rows.min() < 0 or rows.max() >= len(self.cells)):
            raise ValueError("cell_rows refer to cells these statistics do not have")
        return rows

    def same_layout(self, other: ScoreStatistics) -> bool:
        return (
            self.cells == other.cells
            and self.threshold == other.threshold
            and self.score_bins == other.score_bins
        )

    def merge(self, other: ScoreStatistics) -> None:
        if not self.same_layout(other):
            raise ValueError(
                "score statistics with different cells, threshold or bins cannot be added"
            )
        self.counts += other.counts
        self.score_sums += other.score_sums
        self.labelled += other.labelled

    def copy(self) -> ScoreStatistics:
        return ScoreStatistics(
            self.cells,
            self.threshold,
            self.score_bins,
            self.counts.copy(),
            self.score_sums.copy(),
            self.labelled.copy(),
        )

    def flagged(self) -> np.ndarray:
        """Predictions at or above the threshold, per cell."""
        split = threshold_bin(self.threshold, self.score_bins) + 1
        return np.asarray(self.counts[:, split:].sum(axis=1), dtype=np.int64)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "threshold": self.threshold,
            "scoreBins": self.score_bins,
            "cells": [[d, g] for d, g in self.cells],
            "counts": self.counts.tolist(),
            "scoreSums": self.score_sums.tolist(),
            "labelled": self.labelled.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ScoreStatistics:
        """Read the `equiguard.scores/v1` format; ValueError names the bad field."""
        cells, threshold, bins = read_header(data, FORMAT)
        counts = _numbers(data, "counts", np.int64)
        labelled = _numbers(data, "labelled", np.int64)
        for name, array in (("counts", counts), ("labelled", labelled)):
            if (array < 0).any():
                raise ValueError(f"{name}: counts must be non-negative")
        return cls(
            cells,
            threshold,
            bins,
            counts,
            _numbers(data, "scoreSums", np.float64),
            labelled,
        )


def _numbers(
    data: Mapping[str, object], name: str, dtype: type[np.int64] | type[np.float64]
) -> np.ndarray:
    try:
        array = np.asarray(data.get(name), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be an array of numbers") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: must hold finite numbers")
    if dtype is np.int64 and not np.array_equal(array, np.round(array)):
        raise ValueError(f"{name}: counts must be whole numbers")
    return array.astype(dtype)


def sum_scores(parts: Iterable[ScoreStatistics]) -> ScoreStatistics:
    iterator = iter(parts)
    try:
        total = next(iterator).copy()
    except StopIteration:
        raise ValueError("sum_scores needs at least one ScoreStatistics") from None
    for part in iterator:
        total.merge(part)
    return total
