"""Every metric, with its interval, from the sufficient statistics.

Undefined values (a rate with a zero denominator, AUROC of one class) are NaN
here and `null` in JSON, never 0. Definitions are in docs/engine.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from equiguard.engine.intervals import wilson_interval_z, z_value
from equiguard.engine.spec import METRICS, OVERALL
from equiguard.engine.stats import Statistics, threshold_bin
from equiguard.engine.subgroups import ALL, CellKey
from equiguard.engine.utility import calibration_intercept, calibration_slope, net_benefit

COUNTS: tuple[str, ...] = (
    "n",
    "positives",
    "negatives",
    "predictedPositives",
    "predictedNegatives",
    "tp",
    "fp",
    "tn",
    "fn",
)
RATE_METRICS: dict[str, tuple[str, str]] = {
    "prevalence": ("positives", "n"),
    "selectionRate": ("predictedPositives", "n"),
    "tpr": ("tp", "positives"),
    "fpr": ("fp", "negatives"),
    "fnr": ("fn", "positives"),
    "tnr": ("tn", "negatives"),
    "ppv": ("tp", "predictedPositives"),
    "npv": ("tn", "predictedNegatives"),
}
DENOMINATOR: dict[str, str] = {metric: "n" for metric in METRICS}
DENOMINATOR.update({metric: den for metric, (_, den) in RATE_METRICS.items()})
# Metrics for which a lower value is better; "best" picks their minimum.
LOWER_IS_BETTER = frozenset({"fpr", "fnr", "brier", "ece"})
# (calibrationIntercept and calibrationSlope are best at 0 and 1, neither higher nor lower.)
DEFAULT_ECE_BINS = 10


@dataclass(frozen=True)
class CellSums:
    """The sums of some cells, as arrays with one row per cell."""

    counts: Mapping[str, np.ndarray]
    histogram: np.ndarray  # (cells, 2, bins)
    score_sums: np.ndarray  # (cells, 2, bins)
    squared_error_sums: np.ndarray
    squared_error_squares: np.ndarray
    score_bins: int
    threshold: float

    @classmethod
    def of(cls, stats: Statistics, rows: np.ndarray | slice = slice(None)) -> CellSums:
        return cls._build(
            stats.histogram[rows],
            stats.score_sums[rows],
            stats.squared_error_sums[rows],
            stats.squared_error_squares[rows],
            stats.score_bins,
            stats.threshold,
        )

    @classmethod
    def complement(cls, stats: Statistics, rows: np.ndarray, total_row: int) -> CellSums:
        """Everyone in `total_row` except each of `rows` (sums subtract exactly)."""
        return cls._build(
            stats.histogram[total_row] - stats.histogram[rows],
            stats.score_sums[total_row] - stats.score_sums[rows],
            stats.squared_error_sums[total_row] - stats.squared_error_sums[rows],
            stats.squared_error_squares[total_row] - stats.squared_error_squares[rows],
            stats.score_bins,
            stats.threshold,
        )

    @classmethod
    def _build(
        cls,
        histogram: np.ndarray,
        score_sums: np.ndarray,
        squared: np.ndarray,
        fourth: np.ndarray,
        score_bins: int,
        threshold: float,
    ) -> CellSums:
        split = threshold_bin(threshold, score_bins) + 1
        cumulative = histogram.cumsum(axis=2)
        tn, fn = cumulative[:, 0, split - 1], cumulative[:, 1, split - 1]
        negatives, positives = cumulative[:, 0, -1], cumulative[:, 1, -1]
        fp, tp = negatives - tn, positives - fn
        counts = {
            "n": positives + negatives,
            "positives": positives,
            "negatives": negatives,
            "predictedPositives": tp + fp,
            "predictedNegatives": tn + fn,
            "tp": tp,
            "fp": fp,
            "tn": tn,
            "fn": fn,
        }
        return cls(counts, histogram, score_sums, squared, fourth, score_bins, threshold)


@dataclass(frozen=True)
class Estimate:
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def estimate(metric: str, sums: CellSums, z: float, ece_bins: int = DEFAULT_ECE_BINS) -> Estimate:
    """One metric with its two-sided interval at normal quantile z, per cell."""
    counts = sums.counts
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if metric in RATE_METRICS:
            numerator, denominator = RATE_METRICS[metric]
            x, n = counts[numerator], counts[denominator]
            lower, upper = wilson_interval_z(x, n, z)
            return Estimate(x / n, lower, upper)
        n = counts["n"].astype(np.float64)
        if metric == "observedExpectedRatio":
            expected = sums.score_sums.sum(axis=(1, 2))
            defined = (n > 0) & (expected > 0)
            lower, upper = wilson_interval_z(counts["positives"], n, z)
            mean_score = np.where(defined, expected / n, np.nan)
            return Estimate(
                np.where(defined, counts["positives"] / expected, np.nan),
                lower / mean_score,
                upper / mean_score,
            )
        if metric == "brier":
            return _brier(sums, n, z)
        if metric == "ece":
            return _ece(sums, n, z, ece_bins)
        if metric == "auroc":
            value, _bound, lower, upper = _auroc(sums, z)
            return Estimate(value, lower, upper)
        if metric == "netBenefit":
            return Estimate(
                *net_benefit(counts["tp"], counts["fp"], counts["n"], sums.threshold, z)
            )
        if metric == "calibrationIntercept":
            return Estimate(*calibration_intercept(sums.histogram, sums.score_sums, z))
        if metric == "calibrationSlope":
            return Estimate(*calibration_slope(sums.histogram, sums.score_sums, z))
    raise ValueError(f"unknown metric {metric!r}")


def auroc_error_bound(sums: CellSums) -> np.ndarray:
    return _auroc(sums, 0.0)[1]


def _brier(sums: CellSums, n: np.ndarray, z: float) -> Estimate:
    mean = sums.squared_error_sums / n
    # Sample variance of the per-row squared error, from its first two moments.
    variance = np.maximum(sums.squared_error_squares - n * mean * mean, 0.0) / (n - 1)
    half = z * np.sqrt(variance / n)
    half = np.where(n >= 2, half, np.nan)
    return Estimate(mean, np.clip(mean - half, 0.0, 1.0), np.clip(mean + half, 0.0, 1.0))


def _fine_to_coarse(score_bins: int, threshold: float, ece_bins: int) -> np.ndarray:
    if score_bins % ece_bins:
        raise ValueError(f"ece_bins {ece_bins} must divide the {score_bins} score bins")
    split = threshold_bin(threshold, score_bins) + 1
    stored = np.arange(score_bins + 1)
    uniform = np.where(stored >= split, stored - 1, stored)  # undo the threshold split
    return uniform // (score_bins // ece_bins)


def _ece(sums: CellSums, n: np.ndarray, z: float, ece_bins: int) -> Estimate:
    coarse = _fine_to_coarse(sums.score_bins, sums.threshold, ece_bins)
    one_hot = np.zeros((sums.score_bins + 1, ece_bins))
    one_hot[np.arange(sums.score_bins + 1), coarse] = 1.0
    rows = sums.histogram.sum(axis=1) @ one_hot  # (cells, ece_bins)
    positives = sums.histogram[:, 1, :] @ one_hot
    scores = sums.score_sums.sum(axis=1) @ one_hot
    value = np.abs(positives - scores).sum(axis=1) / n
    # Interval: Wilson intervals of each bin's mean label, Bonferroni over the
    # bins, with each bin's mean score held fixed.
    bin_z = z_value(1.0 - 2.0 * _upper_tail(z) / ece_bins) if z > 0 else 0.0
    low, high = wilson_interval_z(positives, rows, bin_z)
    mean_score = scores / rows
    weight = rows / n[:, None]
    farthest = np.maximum(np.abs(high - mean_score), np.abs(mean_score - low))
    nearest = np.maximum(low - mean_score, 0.0) + np.maximum(mean_score - high, 0.0)
    filled = rows > 0
    upper = np.where(filled, weight * farthest, 0.0).sum(axis=1)
    lower = np.where(filled, weight * nearest, 0.0).sum(axis=1)
    defined = n > 0
    return Estimate(
        np.where(defined, value, np.nan),
        np.where(defined, lower, np.nan),
        np.where(defined, np.minimum(upper, 1.0), np.nan),
    )


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _auroc(sums: CellSums, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    negatives_by_bin = sums.histogram[:, 0, :].astype(np.float64)
    positives_by_bin = sums.histogram[:, 1, :].astype(np.float64)
    below = negatives_by_bin.cumsum(axis=1) - negatives_by_bin
    positives = positives_by_bin.sum(axis=1)
    negatives = negatives_by_bin.sum(axis=1)
    pairs = positives * negatives
    tied = (positives_by_bin * negatives_by_bin).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ((positives_by_bin * below).sum(axis=1) + 0.5 * tied) / pairs
        bound = 0.5 * tied / pairs
        # Hanley & McNeil (1982) variance, widened by the binning error bound.
        q1 = value / (2.0 - value)
        q2 = 2.0 * value * value / (1.0 + value)
        variance = (
            value * (1.0 - value)
            + (positives - 1.0) * (q1 - value * value)
            + (negatives - 1.0) * (q2 - value * value)
        ) / pairs
        half = z * np.sqrt(np.maximum(variance, 0.0)) + bound
    defined = pairs > 0
    value = np.where(defined, value, np.nan)
    return (
        value,
        np.where(defined, bound, np.nan),
        np.where(defined, np.clip(value - half, 0.0, 1.0), np.nan),
        np.where(defined, np.clip(value + half, 0.0, 1.0), np.nan),
    )


@dataclass(frozen=True)
class MetricTable:
    """Every metric of every cell, with intervals at `confidence`."""

    cells: tuple[CellKey, ...]
    counts: Mapping[str, np.ndarray]
    values: Mapping[str, np.ndarray]
    lower: Mapping[str, np.ndarray]
    upper: Mapping[str, np.ndarray]
    auroc_error_bound: np.ndarray
    confidence: float
    _index: Mapping[CellKey, int] = field(repr=False, default_factory=dict)

    def _row(self, dimension: str, group: str) -> int:
        return self._index[(dimension, group)]

    def groups(self, dimension: str) -> list[str]:
        return [g for d, g in self.cells if d == dimension]

    def value(self, metric: str, dimension: str, group: str) -> float | None:
        return _number(self.values[metric][self._row(dimension, group)])

    def interval(self, metric: str, dimension: str, group: str) -> tuple[float, float] | None:
        row = self._row(dimension, group)
        lower, upper = float(self.lower[metric][row]), float(self.upper[metric][row])
        return None if math.isnan(lower) or math.isnan(upper) else (lower, upper)

    def count(self, name: str, dimension: str, group: str) -> int:
        return int(self.counts[name][self._row(dimension, group)])

    def overall(self, metric: str) -> float | None:
        return self.value(metric, OVERALL, ALL)

    def by_group(self, metric: str, dimension: str) -> dict[str, float | None]:
        return {g: self.value(metric, dimension, g) for g in self.groups(dimension)}

    def reference_value(self, metric: str, dimension: str, reference: str) -> float | None:
        """`overall`, `best` (among declared groups) or a group's value."""
        if reference == OVERALL:
            return self.overall(metric)
        if reference == "best":
            declared = [
                v
                for g, v in self.by_group(metric, dimension).items()
                if g != "unknown" and v is not None
            ]
            if not declared:
                return None
            return min(declared) if metric in LOWER_IS_BETTER else max(declared)
        return self.value(metric, dimension, reference)

    def difference(
        self, metric: str, dimension: str, reference: str = OVERALL
    ) -> dict[str, float | None]:
        base = self.reference_value(metric, dimension, reference)
        return {
            g: None if v is None or base is None else v - base
            for g, v in self.by_group(metric, dimension).items()
        }

    def ratio(
        self, metric: str, dimension: str, reference: str = OVERALL
    ) -> dict[str, float | None]:
        base = self.reference_value(metric, dimension, reference)
        return {
            g: None if v is None or not base else v / base
            for g, v in self.by_group(metric, dimension).items()
        }

    def max_gap(self, metric: str, dimension: str) -> float | None:
        declared = [
            v
            for g, v in self.by_group(metric, dimension).items()
            if g != "unknown" and v is not None
        ]
        return max(declared) - min(declared) if declared else None


def compute_metrics(
    stats: Statistics, confidence: float = 0.95, ece_bins: int = DEFAULT_ECE_BINS
) -> MetricTable:
    sums = CellSums.of(stats)
    z = z_value(confidence)
    values: dict[str, np.ndarray] = {}
    lower: dict[str, np.ndarray] = {}
    upper: dict[str, np.ndarray] = {}
    for metric in METRICS:
        result = estimate(metric, sums, z, ece_bins)
        values[metric], lower[metric], upper[metric] = result.value, result.lower, result.upper
    return MetricTable(
        cells=stats.cells,
        counts=sums.counts,
        values=values,
        lower=lower,
        upper=upper,
        auroc_error_bound=auroc_error_bound(sums),
        confidence=confidence,
        _index={cell: i for i, cell in enumerate(stats.cells)},
    )


def metrics_report(table: MetricTable) -> dict[str, dict[str, dict[str, object]]]:
    """The `metrics` JSON of docs/engine.md (before small-cell suppression)."""
    report: dict[str, dict[str, dict[str, object]]] = {}
    for row, (dimension, group) in enumerate(table.cells):
        block: dict[str, object] = {name: int(table.counts[name][row]) for name in COUNTS}
        for metric in METRICS:
            block[metric] = _number(table.values[metric][row])
        block["aurocErrorBound"] = _number(table.auroc_error_bound[row])
        intervals: dict[str, list[float | None] | None] = {}
        for metric in METRICS:
            low, high = _number(table.lower[metric][row]), table.upper[metric][row]
            intervals[metric] = None if low is None or math.isnan(high) else [low, _number(high)]
        block["intervals"] = intervals
        block["suppressed"] = []
        report.setdefault(dimension, {})[group] = block
    return report


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) or math.isinf(number) else number
