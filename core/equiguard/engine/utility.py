"""Clinical utility and calibration per cell, from the score histogram.

Net benefit (Vickers & Elkin, Med Decis Making 2006) at a threshold t is
TP/n - FP/n * t/(1-t): exact from counts at the decision threshold and at
every bin edge, so a decision curve on the histogram's edges is exact too.

The calibration intercept and slope (Cox 1958; Van Calster et al., J Clin
Epidemiol 2016) are the logistic recalibration of the labels on logit(score):
the slope from logit P(y) = a + b logit(s), the intercept from
logit P(y) = a + logit(s) (slope fixed at 1). They are fitted on the
histogram: every row of a (bin, label) slot is represented by the logit of
that slot's mean score, which the statistics hold exactly. The estimating
equations then differ from the raw-row ones only by within-slot spread, a
second-order error in the slot's logit width (docs/engine.md states it and
the tests measure it against statsmodels on the raw rows). Scores are
clipped to [SCORE_CLIP, 1 - SCORE_CLIP] before the logit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from equiguard.engine.stats import Statistics

SCORE_CLIP = 1e-6
_NEWTON_STEPS = 50
_TOLERANCE = 1e-10


def net_benefit(
    tp: np.ndarray, fp: np.ndarray, n: np.ndarray, threshold: float, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Net benefit per cell with its normal interval (each row scores 1, -w or 0)."""
    weight = threshold / (1.0 - threshold) if threshold < 1.0 else np.inf
    rows = n.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (tp - weight * fp) / rows
        second_moment = (tp + weight * weight * fp) / rows
        variance = np.maximum(second_moment - value * value, 0.0) * rows / (rows - 1.0)
        half = z * np.sqrt(variance / rows)
    defined = (rows >= 2) & np.isfinite(value)
    value = np.where(rows > 0, value, np.nan)
    return value, np.where(defined, value - half, np.nan), np.where(defined, value + half, np.nan)


def curve_counts(
    histogram: np.ndarray, edge: int, threshold: float, score_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """(tp, fp) per cell at the bin edge edge/score_bins: scores >= that edge."""
    split = min(int(threshold * score_bins), score_bins - 1)
    first = edge if edge <= split else edge + 1  # stored bins above the threshold shift by one
    return histogram[:, 1, first:].sum(axis=1), histogram[:, 0, first:].sum(axis=1)


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit per cell at thresholds on the histogram's bin edges."""

    thresholds: tuple[float, ...]
    model: np.ndarray  # (cells, thresholds)
    treat_all: np.ndarray  # (cells, thresholds)
    tp: np.ndarray  # (cells, thresholds), for small-count suppression
    fp: np.ndarray


def decision_curve(stats: Statistics, thresholds: Sequence[float]) -> DecisionCurve:
    """The decision curve per cell; every threshold must be a bin edge k/scoreBins."""
    edges = []
    for threshold in thresholds:
        edge = round(threshold * stats.score_bins)
        if not 0 < edge < stats.score_bins or abs(edge - threshold * stats.score_bins) > 1e-9:
            raise ValueError(
                f"threshold {threshold!r} is not an inner edge of the {stats.score_bins} score bins"
            )
        edges.append(edge)
    n = stats.histogram.sum(axis=(1, 2)).astype(np.float64)
    positives = stats.histogram[:, 1, :].sum(axis=1)
    negatives = stats.histogram[:, 0, :].sum(axis=1)
    columns = [curve_counts(stats.histogram, e, stats.threshold, stats.score_bins) for e in edges]
    tp = np.stack([c[0] for c in columns], axis=1)
    fp = np.stack([c[1] for c in columns], axis=1)
    weight = np.array([e / (stats.score_bins - e) for e in edges])
    with np.errstate(divide="ignore", invalid="ignore"):
        model = (tp - weight * fp) / n[:, None]
        treat_all = (positives[:, None] - weight * negatives[:, None]) / n[:, None]
    return DecisionCurve(tuple(e / stats.score_bins for e in edges), model, treat_all, tp, fp)


def slot_logits(histogram: np.ndarray, score_sums: np.ndarray) -> np.ndarray:
    """The logit of each (cell, label, bin) slot's mean score; 0 where the slot is empty."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(histogram > 0, score_sums / histogram, 0.5)
    mean = np.clip(mean, SCORE_CLIP, 1.0 - SCORE_CLIP)
    return np.log(mean) - np.log1p(-mean)


def calibration_slope(
    histogram: np.ndarray, score_sums: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope b of logit P(y) = a + b logit(s) per cell, with its Wald interval."""
    cells = histogram.shape[0]
    weights, labels, x = _slots(histogram, score_sums)
    a, b = np.zeros(cells), np.ones(cells)
    info = np.zeros((cells, 2, 2))
    for _ in range(_NEWTON_STEPS):
        p = _sigmoid(a[:, None] + b[:, None] * x)
        residual = weights * (labels - p)
        gradient = np.stack([residual.sum(axis=1), (residual * x).sum(axis=1)], axis=1)
        v = weights * p * (1.0 - p)
        info = np.stack(
            [
                np.stack([v.sum(axis=1), (v * x).sum(axis=1)], axis=1),
                np.stack([(v * x).sum(axis=1), (v * x * x).sum(axis=1)], axis=1),
            ],
            axis=1,
        )
        determinant = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] ** 2
        solvable = determinant > _TOLERANCE * np.maximum(info[:, 0, 0] * info[:, 1, 1], 1.0)
        safe = np.where(solvable, determinant, 1.0)
        step_a = (info[:, 1, 1] * gradient[:, 0] - info[:, 0, 1] * gradient[:, 1]) / safe
        step_b = (info[:, 0, 0] * gradient[:, 1] - info[:, 0, 1] * gradient[:, 0]) / safe
        a = a + np.where(solvable, step_a, 0.0)
        b = b + np.where(solvable, step_b, 0.0)
        if np.all(np.abs(np.where(solvable, step_b, 0.0)) < _TOLERANCE):
            break
    determinant = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] ** 2
    defined = _both_labels(histogram) & (determinant > 0) & np.isfinite(b) & (np.abs(b) < 1e6)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z * np.sqrt(info[:, 0, 0] / determinant)
    return _defined(b, half, defined)


def calibration_intercept(
    histogram: np.ndarray, score_sums: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intercept a of logit P(y) = a + logit(s) per cell, with its Wald interval."""
    weights, labels, x = _slots(histogram, score_sums)
    a = np.zeros(histogram.shape[0])
    information = np.zeros_like(a)
    for _ in range(_NEWTON_STEPS):
        p = _sigmoid(a[:, None] + x)
        information = (weights * p * (1.0 - p)).sum(axis=1)
        gradient = (weights * (labels - p)).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(information > 0, gradient / information, 0.0)
        a = a + step
        if np.all(np.abs(step) < _TOLERANCE):
            break
    defined = _both_labels(histogram) & (information > 0) & np.isfinite(a)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z / np.sqrt(information)
    return _defined(a, half, defined)


def _slots(histogram: np.ndarray, score_sums: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weights, labels and logits of every (label, bin) slot, flattened per cell."""
    cells = histogram.shape[0]
    weights = histogram.reshape(cells, -1).astype(np.float64)
    labels = np.broadcast_to(np.repeat([0.0, 1.0], histogram.shape[2]), weights.shape)
    x = slot_logits(histogram, score_sums).reshape(cells, -1)
    return weights, labels, x


def _both_labels(histogram: np.ndarray) -> np.ndarray:
    counts = histogram.sum(axis=2)
    both: np.ndarray = (counts[:, 0] > 0) & (counts[:, 1] > 0)
    return both


def _defined(
    value: np.ndarray, half: np.ndarray, defined: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.where(defined, value, np.nan),
        np.where(defined, value - half, np.nan),
        np.where(defined, value + half, np.nan),
    )


def _sigmoid(eta: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * eta))
