"""Label-free estimates of each group's rates, from scores, before outcomes arrive.

Under calibration a prediction with score s is a positive with probability
s, so the expected true positives of a window are E[TP] = sum of s over the
flagged predictions (s >= threshold), and so on. A score is rarely perfectly
calibrated in every group, so the reference window (the last good revision's
labelled outcomes) measures, per group and on each side of the threshold,
the ratio r of observed positives to the sum of scores. The window's
positives among its flagged predictions are then A = r_flagged * S_flagged,
among the others B = r_unflagged * S_unflagged, and

    tpr = A / (A + B),  fpr = (F - A) / (n - A - B),  ppv = A / F,

with F the flagged count and n the window's predictions. The interval of A
(and of B) combines, root-sum-square as MOVER does, the uncertainty of r on
the reference and the Bernoulli spread of the window's own outcomes given
its scores; each rate is monotone in A and B, so its bounds are the rate at
the corners of their intervals. The interval is for the rate the window's
outcomes will show when they arrive. Selection rate needs no labels: it is
observed (Wilson).

The estimate is trusted only where the group's calibration on the reference
passes a check: enough labelled predictions on each side of the threshold,
and in no coarse score bin do the observed positives differ from the sum of
scores by more than the Bonferroni z of `check_alpha`. Elsewhere the group
is `EstimateUnavailable` with the reason. What no score can show: a change
in how outcomes follow scores (a treatment that changes a group's outcome
rate) is invisible until labels arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from equiguard.engine.intervals import wilson_interval_z
from equiguard.engine.monitoring import fixed_z
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.stats import Statistics, threshold_bin
from equiguard.engine.subgroups import CellKey

ESTIMATED_METRICS = ("tpr", "fpr", "ppv", "selectionRate")
UNAVAILABLE = "EstimateUnavailable"
# Reasons a group's label-free estimate is not given.
NO_PREDICTIONS = "NoPredictions"
TOO_FEW_REFERENCE_OUTCOMES = "TooFewReferenceOutcomes"
CALIBRATION_FAILS = "CalibrationFails"


@dataclass(frozen=True)
class RateEstimate:
    value: float  # NaN when undefined (no expected positives, nothing flagged)
    lower: float
    upper: float


@dataclass(frozen=True)
class CalibrationCheck:
    passed: bool
    reason: str | None  # TooFewReferenceOutcomes | CalibrationFails
    message: str
    worst_z: float | None  # the largest |observed - expected| / sd over coarse bins
    # observed / expected positives on the reference, below and at/above the threshold
    ratios: tuple[float, float] | None


@dataclass(frozen=True)
class GroupEstimate:
    dimension: str
    group: str
    n: int
    calibration: CalibrationCheck
    rates: dict[str, RateEstimate] = field(default_factory=dict)  # only available ones

    @property
    def available(self) -> bool:
        return self.calibration.passed and self.n > 0

    @property
    def reason(self) -> str | None:
        if self.n == 0:
            return NO_PREDICTIONS
        return self.calibration.reason


def check_calibration(
    reference: Statistics,
    row: int,
    *,
    min_outcomes: int = 50,
    check_alpha: float = 0.01,
    coarse_bins: int = 10,
) -> CalibrationCheck:
    """Whether a cell's scores were calibrated on its labelled reference."""
    split = threshold_bin(reference.threshold, reference.score_bins) + 1
    counts = reference.histogram[row].sum(axis=0)
    positives = reference.histogram[row, 1]
    sums = reference.score_sums[row].sum(axis=0)
    sides = (slice(0, split), slice(split, None))
    side_n = [int(counts[s].sum()) for s in sides]
    if min(side_n) < min_outcomes:
        return CalibrationCheck(
            False,
            TOO_FEW_REFERENCE_OUTCOMES,
            f"the reference has fewer than {min_outcomes} labelled predictions on one side "
            "of the threshold",
            None,
            None,
        )
    expected = [float(sums[s].sum()) for s in sides]
    ratios = tuple(
        float(positives[s].sum()) / e if e > 0 else math.nan
        for s, e in zip(sides, expected, strict=True)
    )
    variance = _bernoulli_variance(counts, sums)
    coarse = np.minimum(np.arange(len(counts)) * coarse_bins // len(counts), coarse_bins - 1)
    observed_k = np.bincount(coarse, positives, coarse_bins)
    expected_k = np.bincount(coarse, sums, coarse_bins)
    variance_k = np.bincount(coarse, variance, coarse_bins)
    used = variance_k > 0
    z = np.abs(observed_k[used] - expected_k[used]) / np.sqrt(variance_k[used])
    worst = float(z.max()) if z.size else 0.0
    limit = fixed_z(check_alpha / max(int(used.sum()), 1))
    if worst > limit or not all(math.isfinite(r) for r in ratios):
        return CalibrationCheck(
            False,
            CALIBRATION_FAILS,
            f"on the reference, observed positives differ from the scores' sum by {worst:.1f} "
            f"standard deviations in a score band (the check allows {limit:.1f})",
            worst,
            (ratios[0], ratios[1]),
        )
    return CalibrationCheck(
        True, None, "calibrated on the reference", worst, (ratios[0], ratios[1])
    )


def estimate_rates(
    current: ScoreStatistics,
    reference: Statistics,
    *,
    confidence: float = 0.95,
    z: float | None = None,
    min_outcomes: int = 50,
    check_alpha: float = 0.01,
) -> list[GroupEstimate]:
    """Every cell's estimated rates in `current`, checked against `reference`.

    `z` overrides the interval's normal quantile (a sequential boundary, a
    multiplicity-corrected one); by default it is the two-sided `confidence` z.
    """
    if (
        current.cells != reference.cells
        or current.threshold != reference.threshold
        or (current.score_bins != reference.score_bins)
    ):
        raise ValueError(
            "current and reference statistics must have the same cells, threshold and bins"
        )
    z = fixed_z(1.0 - confidence) if z is None else z
    split = threshold_bin(current.threshold, current.score_bins) + 1
    results = []
    for row, (dimension, group) in enumerate(current.cells):
        n = int(current.counts[row].sum())
        flagged = int(current.counts[row, split:].sum())
        check = check_calibration(
            reference, row, min_outcomes=min_outcomes, check_alpha=check_alpha
        )
        rates: dict[str, RateEstimate] = {}
        if n > 0:
            lo, hi = wilson_interval_z(flagged, n, z)
            rates["selectionRate"] = RateEstimate(flagged / n, float(lo), float(hi))
        if n > 0 and check.passed:
            rates.update(_labelled_rates(current, reference, row, split, z, n, flagged))
        results.append(GroupEstimate(dimension, group, n, check, rates))
    return results


def _labelled_rates(
    current: ScoreStatistics,
    reference: Statistics,
    row: int,
    split: int,
    z: float,
    n: int,
    flagged: int,
) -> dict[str, RateEstimate]:
    unflagged_side = _side_positives(current, reference, row, slice(0, split), z, n - flagged)
    flagged_side = _side_positives(current, reference, row, slice(split, None), z, flagged)
    a, a_lo, a_hi = flagged_side
    b, b_lo, b_hi = unflagged_side
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = RateEstimate(
            *(float(x) for x in _ratio((a, a_lo, a_hi), (a + b, a_lo + b_hi, a_hi + b_lo)))
        )
        fpr = RateEstimate(
            *(
                float(x)
                for x in _ratio(
                    (flagged - a, flagged - a_hi, flagged - a_lo),
                    (n - a - b, n - a_hi - b_lo, n - a_lo - b_hi),
                )
            )
        )
        ppv = RateEstimate(
            *(float(x) for x in _ratio((a, a_lo, a_hi), (flagged, flagged, flagged)))
        )
    return {"tpr": tpr, "fpr": fpr, "ppv": ppv}


def _ratio(
    numerator: tuple[float, float, float], denominator: tuple[float, float, float]
) -> tuple[float, float, float]:
    """(value, lower, upper) of a ratio from the corners chosen by the caller."""
    value = numerator[0] / denominator[0] if denominator[0] > 0 else math.nan
    lower = numerator[1] / denominator[1] if denominator[1] > 0 else math.nan
    upper = numerator[2] / denominator[2] if denominator[2] > 0 else math.nan
    if math.isnan(value):
        return math.nan, math.nan, math.nan
    lower = 0.0 if math.isnan(lower) else lower
    upper = 1.0 if math.isnan(upper) else upper
    return value, min(max(lower, 0.0), value), max(min(upper, 1.0), value)


def _side_positives(
    current: ScoreStatistics,
    reference: Statistics,
    row: int,
    side: slice,
    z: float,
    count: int,
) -> tuple[float, float, float]:
    """Estimated positives of the window on one side of the threshold, with bounds."""
    ref_counts = reference.histogram[row].sum(axis=0)[side]
    ref_sums = reference.score_sums[row].sum(axis=0)[side]
    observed = float(reference.histogram[row, 1][side].sum())
    expected = float(ref_sums.sum())
    ref_sd = math.sqrt(float(_bernoulli_variance(ref_counts, ref_sums).sum()))
    ratio = observed / expected
    ratio_lo = max(observed - z * ref_sd, 0.0) / expected
    ratio_hi = (observed + z * ref_sd) / expected
    counts = current.counts[row][side]
    sums = current.score_sums[row][side]
    scores = float(sums.sum())
    estimate = min(ratio * scores, float(count))
    # The window's own outcomes spread around their expectation given the scores.
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(counts > 0, np.minimum(ratio * sums / counts, 1.0), 0.0)
    spread = z * math.sqrt(float((counts * p * (1.0 - p)).sum()))
    lower = estimate - math.hypot(scores * (ratio - ratio_lo), spread)
    upper = estimate + math.hypot(scores * (ratio_hi - ratio), spread)
    return estimate, max(lower, 0.0), min(upper, float(count))


def _bernoulli_variance(counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Per bin, an upper bound of sum s(1 - s) from the bin's count and score sum."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums - sums * sums / counts, 0.0)


def estimate_of(estimates: list[GroupEstimate], cell: CellKey) -> GroupEstimate:
    for item in estimates:
        if (item.dimension, item.group) == cell:
            return item
    raise KeyError(cell)
