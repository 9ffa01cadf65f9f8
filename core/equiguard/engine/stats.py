"""Sufficient statistics per subgroup cell; they merge by addition.

Per cell: a score histogram per label whose bins are split at the decision
threshold (so TP/FP/TN/FN are exact sums of bins), the score sum of every
bin, and the sums of (score - label)^2 and ^4. Every metric of
`equiguard.engine.metrics` is a function of these sums, so shards, replicas
and time buckets combine by adding arrays. The JSON format is in docs/engine.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from equiguard.engine.blocks import BlockPlan
from equiguard.engine.subgroups import CellKey

FORMAT = "equiguard.stats/v1"
DEFAULT_SCORE_BINS = 100
# Rows per pass over a batch, at most: the temporaries (a quarter of a MB
# each for the blocks) stay in cache and in the allocator's reach instead of
# being mapped and page-faulted anew for every batch.
_CHUNK_ROWS = 32768
# Slots in one block's joint table: the readmission example's tables (three
# blocks of complex entries) then take half a MB, within a core's cache.
_HISTOGRAM_SLOTS = 16384
_SUM_SLOTS = 4096


def score_bin(scores: np.ndarray, threshold: float, score_bins: int) -> np.ndarray:
    """Histogram bin of each score: equal bins on [0, 1] with the one holding
    the threshold split in two at it (bins 0..t are predicted negative)."""
    bins = (scores * score_bins).astype(np.int64)
    np.minimum(bins, score_bins - 1, out=bins)
    bins += scores >= threshold
    return bins


def threshold_bin(threshold: float, score_bins: int) -> int:
    """The last predicted-negative bin `t`; bins above it are predicted positive."""
    return min(int(threshold * score_bins), score_bins - 1)


@dataclass(frozen=True)
class _BlockPlans:
    dimensions: int
    first: np.ndarray  # each dimension's first cell
    sizes: np.ndarray  # and its number of cells
    histogram: BlockPlan  # a (label, bin) slot per joint code
    sums: BlockPlan  # one slot per joint code

    def worth_it(self, rows: int) -> bool:
        """Whether a batch saves more than the projection costs. Per row the blocks
        take two scattered adds per block where the direct update takes four per
        dimension; the projection reads each table entry once per dimension of its
        block, at about the cost of one add (measured on the readmission example)."""
        passes = 2 * (len(self.histogram.blocks) + len(self.sums.blocks))
        projected = sum(block.length * len(block.columns) for block in self.histogram.blocks)
        return rows * (4 * self.dimensions - passes) > projected


@lru_cache(maxsize=64)
def _block_plans(cells: tuple[CellKey, ...], score_bins: int) -> _BlockPlans | None:
    """Plans for the dimensions the cells spell out, each a run of one dimension's cells."""
    offsets = [
        i for i, (dimension, _) in enumerate(cells) if i == 0 or dimension != cells[i - 1][0]
    ]
    if len({dimension for dimension, _ in cells}) != len(offsets):
        return None  # a dimension's cells are not together: only the direct update applies
    sizes = [end - start for start, end in zip(offsets, [*offsets[1:], len(cells)], strict=True)]
    histogram = BlockPlan.of_cells(offsets, sizes, 2 * (score_bins + 1), _HISTOGRAM_SLOTS)
    return _BlockPlans(
        dimensions=len(offsets),
        first=np.array(offsets),
        sizes=np.array(sizes),
        histogram=histogram,
        sums=BlockPlan.of_blocks(histogram, offsets, sizes, _SUM_SLOTS),
    )


class Statistics:
    """Mutable accumulator of one set of cells (a bucket, a window, a pod)."""

    __slots__ = (
        "cells",
        "histogram",
        "score_bins",
        "score_sums",
        "squared_error_squares",
        "squared_error_sums",
        "threshold",
    )

    def __init__(
        self,
        cells: Sequence[CellKey],
        threshold: float,
        score_bins: int,
        histogram: np.ndarray,
        score_sums: np.ndarray,
        squared_error_sums: np.ndarray,
        squared_error_squares: np.ndarray,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold {threshold!r} is outside [0, 1]")
        if score_bins < 1:
            raise ValueError("score_bins must be at least 1")
        shape = (len(cells), 2, score_bins + 1)
        for name, array in (("histogram", histogram), ("score_sums", score_sums)):
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
        for name, array in (
            ("squared_error_sums", squared_error_sums),
            ("squared_error_squares", squared_error_squares),
        ):
            if array.shape != (len(cells),):
                raise ValueError(f"{name} has shape {array.shape}, expected {(len(cells),)}")
        self.cells: tuple[CellKey, ...] = tuple((str(d), str(g)) for d, g in cells)
        self.threshold = float(threshold)
        self.score_bins = int(score_bins)
        # Contiguous, so that a flat view of each is the array itself (see _add).
        self.histogram = np.ascontiguousarray(histogram, dtype=np.int64)
        self.score_sums = np.ascontiguousarray(score_sums, dtype=np.float64)
        self.squared_error_sums = np.ascontiguousarray(squared_error_sums, dtype=np.float64)
        self.squared_error_squares = np.ascontiguousarray(squared_error_squares, dtype=np.float64)

    @classmethod
    def empty(
        cls, cells: Sequence[CellKey], threshold: float, score_bins: int = DEFAULT_SCORE_BINS
    ) -> Statistics:
        shape = (len(cells), 2, score_bins + 1)
        return cls(
            cells,
            threshold,
            score_bins,
            np.zeros(shape, np.int64),
            np.zeros(shape),
            np.zeros(len(cells)),
            np.zeros(len(cells)),
        )

    def update(self, cell_rows: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        """Add labelled predictions: cell_rows (n, dimensions) from CellLayout.assign."""
        scores = np.asarray(scores, dtype=np.float64)
        labels = _labels(labels)
        cell_rows = np.asarray(cell_rows, dtype=np.int64)
        n = len(scores)
        if cell_rows.ndim != 2 or cell_rows.shape[0] != n or len(labels) != n:
            raise ValueError("cell_rows, scores and labels must describe the same rows")
        if n == 0:
            return
        if not (scores.min() >= 0.0 and scores.max() <= 1.0):  # also rejects NaN
            raise ValueError("scores must lie in [0, 1]")
        plans = _block_plans(self.cells, self.score_bins)
        dims = cell_rows.shape[1]
        if plans is not None and dims == plans.dimensions and plans.worth_it(n):
            self._add_by_blocks(plans, cell_rows, scores, labels)  # checks each column
            return
        if cell_rows.min() < 0 or cell_rows.max() >= len(self.cells):
            raise ValueError("cell_rows refer to cells this Statistics does not have")
        for start in range(0, n, _CHUNK_ROWS):
            end = start + _CHUNK_ROWS
            self._add(cell_rows[start:end], scores[start:end], labels[start:end])

    def _add(self, cell_rows: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        width = self.score_bins + 1
        dims = cell_rows.shape[1]
        per_row = labels * width + score_bin(scores, self.threshold, self.score_bins)
        # One flat index per (row, dimension): cell, label and score bin together.
        # (Repeating per_row is much faster than broadcasting it along the short axis.)
        index = (cell_rows * (2 * width)).ravel()
        index += np.repeat(per_row, dims)
        # Scattered adds straight into the statistics, which update() has checked
        # the rows against: no table the size of every cell is made for a batch.
        np.add.at(self.histogram.reshape(-1), index, 1)
        np.add.at(self.score_sums.reshape(-1), index, np.repeat(scores, dims))
        errors = np.repeat((scores - labels) ** 2, dims)
        flat_cells = cell_rows.ravel()
        np.add.at(self.squared_error_sums, flat_cells, errors)
        np.add.at(self.squared_error_squares, flat_cells, errors * errors)

    def _add_by_blocks(
        self, plans: _BlockPlans, cell_rows: np.ndarray, scores: np.ndarray, labels: np.ndarray
    ) -> None:
        """The sums of `_add`, counted per block of dimensions (engine.blocks)."""
        histogram, sums = plans.histogram, plans.sums
        # Whole columns are read many times below; CellLayout.assign already gives them.
        cell_rows = np.asfortranarray(cell_rows)
        # A joint code is only right if every column holds cells of its own dimension.
        if (cell_rows.min(axis=0) < plans.first).any() or (
            cell_rows.max(axis=0) >= plans.first + plans.sizes
        ).any():
            raise ValueError("cell_rows hold a cell outside its dimension")
        # Two sums per table entry, as one complex number: count and score sum,
        # squared error and its square. Complex numbers add their parts apart,
        # exactly as two float tables would (a count is an integer below 2**53,
        # which float64 holds exactly), but one scattered add updates both.
        tables = np.zeros(histogram.table_length, np.complex128)
        sum_tables = np.zeros(sums.table_length, np.complex128)
        chunks = _chunks(len(scores))
        longest = max(rows.stop - rows.start for rows in chunks)
        counted = np.empty(longest, np.complex128)  # (1, score) per row
        counted.real = 1.0
        errors = np.empty(longest, np.complex128)  # (error, error**2) per row
        width = self.score_bins + 1
        for rows in chunks:
            columns = [cell_rows[rows, j] for j in range(plans.dimensions)]
            chunk_scores, chunk_labels = scores[rows], labels[rows]
            slot = score_bin(chunk_scores, self.threshold, self.score_bins)
            slot += chunk_labels * width
            codes = histogram.codes(columns, len(slot))
            weights = counted[: len(slot)]
            weights.imag = chunk_scores
            # Scattered adds straight into the tables (np.add.at): no table per
            # pass to allocate and add, and fewer cycles per row than np.bincount.
            # Every key is in its block's table, since every column was checked.
            for block, code in zip(histogram.blocks, codes, strict=True):
                key = code * histogram.slots
                key += slot
                np.add.at(tables[block.start : block.start + block.length], key, weights)
            error = errors[: len(slot)]
            np.subtract(chunk_scores, chunk_labels, out=error.real)
            np.multiply(error.real, error.real, out=error.real)
            np.multiply(error.real, error.real, out=error.imag)
            for block, code in zip(sums.blocks, sums.codes(codes, len(slot)), strict=True):
                np.add.at(sum_tables[block.start : block.start + block.length], code, error)
        projected = histogram.project(tables)
        self.histogram += projected.real.astype(np.int64).reshape(self.histogram.shape)
        self.score_sums += projected.imag.reshape(self.score_sums.shape)
        projected = sums.project(sum_tables)[:, 0]
        self.squared_error_sums += projected.real
        self.squared_error_squares += projected.imag

    def same_layout(self, other: Statistics) -> bool:
        return (
            self.cells == other.cells
            and self.threshold == other.threshold
            and self.score_bins == other.score_bins
        )

    def merge(self, other: Statistics) -> None:
        """Add another Statistics of the same layout into this one."""
        if not self.same_layout(other):
            raise ValueError(
                "statistics with different cells, threshold or score bins cannot be added"
            )
        self.histogram += other.histogram
        self.score_sums += other.score_sums
        self.squared_error_sums += other.squared_error_sums
        self.squared_error_squares += other.squared_error_squares

    def __add__(self, other: Statistics) -> Statistics:
        total = self.copy()
        total.merge(other)
        return total

    def copy(self) -> Statistics:
        return Statistics(
            self.cells,
            self.threshold,
            self.score_bins,
            self.histogram.copy(),
            self.score_sums.copy(),
            self.squared_error_sums.copy(),
            self.squared_error_squares.copy(),
        )

    def is_empty(self) -> bool:
        return not self.histogram.any()

    def confusion(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tp, fp, tn, fn) per cell, exact."""
        split = threshold_bin(self.threshold, self.score_bins) + 1
        negatives_by_bin, positives_by_bin = self.histogram[:, 0, :], self.histogram[:, 1, :]
        tp = positives_by_bin[:, split:].sum(axis=1)
        fn = positives_by_bin[:, :split].sum(axis=1)
        fp = negatives_by_bin[:, split:].sum(axis=1)
        tn = negatives_by_bin[:, :split].sum(axis=1)
        return tp, fp, tn, fn

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "threshold": self.threshold,
            "scoreBins": self.score_bins,
            "cells": [[d, g] for d, g in self.cells],
            "histogram": self.histogram.tolist(),
            "scoreSums": self.score_sums.tolist(),
            "squaredErrorSums": self.squared_error_sums.tolist(),
            "squaredErrorSquares": self.squared_error_squares.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Statistics:
        """Read the `equiguard.stats/v1` format; ValueError names the bad field."""
        cells, threshold, bins = read_header(data, FORMAT)
        n = len(cells)
        histogram = _array(data, "histogram", (n, 2, bins + 1), np.int64)
        if (histogram < 0).any():
            raise ValueError("histogram: counts must be non-negative")
        return cls(
            cells,
            float(threshold),
            bins,
            histogram,
            _array(data, "scoreSums", (n, 2, bins + 1), np.float64),
            _array(data, "squaredErrorSums", (n,), np.float64),
            _array(data, "squaredErrorSquares", (n,), np.float64),
        )


def sum_statistics(parts: Iterable[Statistics]) -> Statistics:
    """The sum of one or more Statistics of the same layout."""
    iterator = iter(parts)
    try:
        total = next(iterator).copy()
    except StopIteration:
        raise ValueError("sum_statistics needs at least one Statistics") from None
    for part in iterator:
        total.merge(part)
    return total


def _chunks(rows: int) -> list[slice]:
    """At most _CHUNK_ROWS rows each, and as even as can be."""
    count = max(1, -(-rows // _CHUNK_ROWS))
    bounds = [rows * i // count for i in range(count + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _labels(labels: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind not in "iuf":
        raise ValueError("labels must be 0 or 1")
    as_int = array.astype(np.int64, copy=False)
    if len(array) and (
        as_int.min() < 0
        or as_int.max() > 1
        or (array.dtype.kind == "f" and not np.array_equal(as_int, array))
    ):
        raise ValueError("labels must be 0 or 1")
    return as_int


def read_header(data: Mapping[str, object], format_: str) -> tuple[list[CellKey], float, int]:
    """The fields every per-cell statistics document opens with: (cells, threshold,
    score bins); ValueError names the bad field."""
    if data.get("format") != format_:
        raise ValueError(f"format: expected {format_!r}, got {data.get('format')!r}")
    threshold = data.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0.0 <= threshold <= 1.0
    ):
        raise ValueError("threshold: must be a number in [0, 1]")
    bins = data.get("scoreBins")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError("scoreBins: must be a positive integer")
    raw_cells = data.get("cells")
    if not isinstance(raw_cells, list) or not all(
        isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) for x in c)
        for c in raw_cells
    ):
        raise ValueError("cells: must be a list of [dimension, group] string pairs")
    return [(c[0], c[1]) for c in raw_cells], float(threshold), bins


def _array(
    data: Mapping[str, object],
    name: str,
    shape: tuple[int, ...],
    dtype: type[np.int64] | type[np.float64],
) -> np.ndarray:
    try:
        array = np.asarray(data.get(name), dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: must be an array of numbers of shape {shape}") from None
    if array.shape != shape:
        raise ValueError(f"{name}: has shape {array.shape}, expected {shape}")
    if dtype is np.float64 and not np.isfinite(array).all():
        raise ValueError(f"{name}: must hold finite numbers")
    if dtype is np.int64:
        source = np.asarray(data.get(name), dtype=np.float64)
        if not np.array_equal(source, array):
            raise ValueError(f"{name}: counts must be whole numbers")
    return array
