"""Shift signals per group against the reference, valid under continuous checking.

Four signals, each a share compared with the reference's:

- `scoreDistribution`: the share of the group's predictions at or below each
  cut of the reference's score deciles (a two-sample test of binned
  distributions, one comparison per cut);
- `flagRate`: the share of the group's predictions at or above the threshold;
- `subgroupMix`: the group's share of its dimension's predictions;
- `labelCoverage`: the group's share of the window's joined outcomes against
  its share of the window's predictions (a group whose outcomes go missing).
  Predictions are taken as given, so under "outcomes arrive independently
  of the group" that share is known exactly and only the current side is
  uncertain; compare windows of predictions of the same age.

A share is shifted when its interval on the current window and the
reference's interval are disjoint (or, for coverage, the current interval
excludes the expected share). The current interval is a confidence sequence
(the normal-mixture z of `monitoring`, at the current count), so it may be
read every minute; the reference is fixed, so its interval is fixed-sample.
Each spends half of a test's alpha, and the tests share the model's false
alarm budget by a union bound over every signal, group, cut and epoch, as
the labelled SLOs do (`monitoring.comparison_alpha`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from equiguard.engine.intervals import wilson_interval_z
from equiguard.engine.monitoring import (
    DEFAULT_PLAN,
    MonitoringPlan,
    comparison_alpha,
    fixed_z,
    mixture_z,
)
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.stats import threshold_bin

SIGNALS = ("scoreDistribution", "flagRate", "subgroupMix", "labelCoverage")
DISTRIBUTION_CUTS = 9  # the reference's deciles


@dataclass(frozen=True)
class ShiftSignal:
    signal: str
    dimension: str
    group: str
    shifted: bool
    current: float | None  # the share in the current window (None below min_samples)
    reference: float | None
    interval: tuple[float, float] | None  # the current share's interval
    reference_interval: tuple[float, float] | None
    n: int  # the current denominator
    cut: float | None = None  # scoreDistribution: the score the share is taken below


def signal_test_count(cells: int) -> int:
    """Tests per evaluation of one epoch: the union bound's multiplicity."""
    groups = cells - 1  # subgroupMix and labelCoverage leave out `overall`
    return cells * (DISTRIBUTION_CUTS + 1) + 2 * groups


def shift_alpha(
    false_alarm: float,
    cells: int,
    window_seconds: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
) -> float:
    """The alpha of one test (both of its sides) for a false-alarm budget."""
    return comparison_alpha(false_alarm, signal_test_count(cells), window_seconds, plan)


def sequence_z(alpha: float, n: np.ndarray, plan: MonitoringPlan | None) -> np.ndarray:
    """The z of the current side's interval at n (fixed-sample without a plan)."""
    n = np.asarray(n, dtype=np.float64)
    if plan is None:
        return np.full(n.shape, fixed_z(alpha))
    mixture_z(alpha, 1.0, plan.tuning_outcomes)  # validates alpha
    # monitoring.mixture_z, vectorized: the bench evaluates millions of minutes.
    v, rho = np.maximum(n, 1.0), plan.tuning_outcomes
    squared = (1.0 + rho / v) * (2.0 * np.log(1.0 / alpha) + np.log1p(v / rho))
    return np.asarray(np.sqrt(squared), dtype=np.float64)


def shares_differ(
    x: np.ndarray,
    n: np.ndarray,
    ref_x: np.ndarray,
    ref_n: np.ndarray,
    alpha: float,
    plan: MonitoringPlan | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized: (shifted, lower, upper, ref_lower, ref_upper) of x/n against ref_x/ref_n."""
    lower, upper = _wilson_at(x, n, sequence_z(alpha / 2, n, plan))
    ref_lower, ref_upper = wilson_interval_z(ref_x, ref_n, fixed_z(alpha / 2))
    shifted = (lower > ref_upper) | (upper < ref_lower)
    return shifted, lower, upper, ref_lower, ref_upper


def share_departs(
    x: np.ndarray, n: np.ndarray, expected: np.ndarray, alpha: float, plan: MonitoringPlan | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorized: (shifted, lower, upper) of x/n against a known share."""
    lower, upper = _wilson_at(x, n, sequence_z(alpha, n, plan))
    return (lower > expected) | (upper < expected), lower, upper


def _wilson_at(x: np.ndarray, n: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, n = np.asarray(x, np.float64), np.asarray(n, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1.0 + z * z / n
        center = (p + z * z / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def distribution_cuts(reference: ScoreStatistics, row: int) -> np.ndarray:
    """Fine-bin indices closing each decile of the reference (the cut is after the bin)."""
    cumulative = np.cumsum(reference.counts[row])
    total = cumulative[-1] if len(cumulative) else 0
    if total == 0:
        return np.zeros(0, np.int64)
    targets = total * np.arange(1, DISTRIBUTION_CUTS + 1) / (DISTRIBUTION_CUTS + 1)
    cuts = np.unique(np.searchsorted(cumulative, targets))
    return cuts[cuts < len(cumulative) - 1]


def detect_shifts(
    current: ScoreStatistics,
    reference: ScoreStatistics,
    alpha: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
    min_samples: int = 50,
) -> list[ShiftSignal]:
    """Every signal of every cell on one epoch's statistics, each test at `alpha`."""
    if not current.same_layout(reference):
        raise ValueError("current and reference must have the same cells, threshold and bins")
    split = threshold_bin(current.threshold, current.score_bins) + 1
    n = current.counts.sum(axis=1)
    ref_n = reference.counts.sum(axis=1)
    dimension_n = np.array([_dimension_total(n, current, d) for d, _ in current.cells])
    ref_dimension_n = np.array([_dimension_total(ref_n, reference, d) for d, _ in reference.cells])
    labelled_total = np.array(
        [_dimension_total(current.labelled, current, d) for d, _ in current.cells]
    )
    signals: list[ShiftSignal] = []
    for row, (dimension, group) in enumerate(current.cells):
        enough = n[row] >= min_samples and ref_n[row] >= min_samples
        cuts = distribution_cuts(reference, row)
        for cut in cuts.tolist():
            below = current.counts[row, : cut + 1].sum()
            ref_below = reference.counts[row, : cut + 1].sum()
            signals.append(
                _compared(
                    "scoreDistribution",
                    dimension,
                    group,
                    below,
                    n[row],
                    ref_below,
                    ref_n[row],
                    alpha,
                    plan,
                    enough,
                    cut=(cut + 1) / (current.score_bins + 1),
                )
            )
        signals.append(
            _compared(
                "flagRate",
                dimension,
                group,
                current.counts[row, split:].sum(),
                n[row],
                reference.counts[row, split:].sum(),
                ref_n[row],
                alpha,
                plan,
                enough,
            )
        )
        if dimension == "overall":
            continue
        mix_enough = dimension_n[row] >= min_samples and ref_dimension_n[row] >= min_samples
        signals.append(
            _compared(
                "subgroupMix",
                dimension,
                group,
                n[row],
                dimension_n[row],
                ref_n[row],
                ref_dimension_n[row],
                alpha,
                plan,
                mix_enough,
            )
        )
        expected = n[row] / dimension_n[row] if dimension_n[row] else 0.0
        coverage_enough = labelled_total[row] >= min_samples and n[row] >= min_samples
        if coverage_enough:
            shifted, lower, upper = share_departs(
                np.array(current.labelled[row]),
                np.array(labelled_total[row]),
                np.array(expected),
                alpha,
                plan,
            )
            signals.append(
                ShiftSignal(
                    "labelCoverage",
                    dimension,
                    group,
                    bool(shifted),
                    float(current.labelled[row] / labelled_total[row]),
                    float(expected),
                    (float(lower), float(upper)),
                    None,
                    int(labelled_total[row]),
                )
            )
        else:
            signals.append(
                ShiftSignal(
                    "labelCoverage",
                    dimension,
                    group,
                    False,
                    None,
                    None,
                    None,
                    None,
                    int(labelled_total[row]),
                )
            )
    return signals


def _dimension_total(values: np.ndarray, stats: ScoreStatistics, dimension: str) -> int:
    rows = [i for i, (d, _) in enumerate(stats.cells) if d == dimension]
    return int(values[rows].sum())


def _compared(
    signal: str,
    dimension: str,
    group: str,
    x: object,
    n: object,
    ref_x: object,
    ref_n: object,
    alpha: float,
    plan: MonitoringPlan | None,
    enough: bool,
    cut: float | None = None,
) -> ShiftSignal:
    count = int(np.asarray(n))
    if not enough:
        return ShiftSignal(signal, dimension, group, False, None, None, None, None, count, cut)
    shifted, lower, upper, ref_lower, ref_upper = shares_differ(
        np.array(x), np.array(n), np.array(ref_x), np.array(ref_n), alpha, plan
    )
    return ShiftSignal(
        signal,
        dimension,
        group,
        bool(shifted),
        float(np.asarray(x)) / count,
        float(np.asarray(ref_x)) / float(np.asarray(ref_n)),
        (float(lower), float(upper)),
        (float(ref_lower), float(ref_upper)),
        count,
        cut,
    )


def evaluate_shifts(
    epochs: Sequence[ScoreStatistics],
    reference: ScoreStatistics,
    false_alarm: float,
    window_seconds: float,
    plan: MonitoringPlan | None = DEFAULT_PLAN,
    min_samples: int = 50,
) -> list[ShiftSignal]:
    """The signals over the epochs in use (`monitoring.epoch_spans`): shifted in any epoch.

    Per signal the epoch reported is the first shifted one, else the oldest.
    """
    alpha = shift_alpha(false_alarm, len(reference.cells), window_seconds, plan)
    chosen: list[ShiftSignal] | None = None
    for stats in epochs:
        signals = detect_shifts(stats, reference, alpha, plan, min_samples)
        if chosen is None:
            chosen = signals
        else:
            chosen = [
                old if old.shifted or not new.shifted else new
                for old, new in zip(chosen, signals, strict=True)
            ]
    return chosen or []
