"""Confidence intervals, vectorized over cells.

Wilson score intervals for rates; Newcombe's hybrid score interval for a
difference of two rates, which is the MOVER combination (method of variance
estimates recovery, Zou & Donner 2008) of the two Wilson intervals; the same
recovery on the log scale for ratios. Undefined inputs give NaN bounds.
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

_NORMAL = NormalDist()


@lru_cache(maxsize=256)
def z_value(confidence: float, sides: int = 2) -> float:
    """The normal quantile of a `confidence` interval with one or two sides."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence!r} must lie in (0, 1)")
    tail = (1.0 - confidence) / sides
    return _NORMAL.inv_cdf(1.0 - tail)


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of successes / trials (NaN where trials == 0)."""
    return wilson_interval_z(successes, trials, z_value(confidence))


def wilson_interval_z(
    successes: ArrayLike, trials: ArrayLike, z: float
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        z2 = z * z
        denominator = 1.0 + z2 / n
        center = (p + z2 / (2.0 * n)) / denominator
        half = z * np.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    return np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)


def mover_difference(
    est1: ArrayLike, lo1: ArrayLike, hi1: ArrayLike, est2: ArrayLike, lo2: ArrayLike, hi2: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for est1 - est2 from two independent intervals at the same level."""
    e1, l1, h1 = (np.asarray(a, dtype=np.float64) for a in (est1, lo1, hi1))
    e2, l2, h2 = (np.asarray(a, dtype=np.float64) for a in (est2, lo2, hi2))
    difference = e1 - e2
    lower = difference - np.sqrt((e1 - l1) ** 2 + (h2 - e2) ** 2)
    upper = difference + np.sqrt((h1 - e1) ** 2 + (e2 - l2) ** 2)
    return lower, upper


def newcombe_difference(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for x1/n1 - x2/n2 (his method 10)."""
    return newcombe_difference_z(x1, n1, x2, n2, z_value(confidence))


def newcombe_difference_z(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, z: float
) -> tuple[np.ndarray, np.ndarray]:
    lo1, hi1 = wilson_interval_z(x1, n1, z)
    lo2, hi2 = wilson_interval_z(x2, n2, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.asarray(x1, dtype=np.float64) / np.asarray(n1, dtype=np.float64)
        p2 = np.asarray(x2, dtype=np.float64) / np.asarray(n2, dtype=np.float64)
    return mover_difference(p1, lo1, hi1, p2, lo2, hi2)


def log_ratio_interval(
    est1: ArrayLike, lo1: ArrayLike, hi1: ArrayLike, est2: ArrayLike, lo2: ArrayLike, hi2: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for est1 / est2 from two independent intervals of positive
    quantities, combined on the log scale. A zero lower bound of est1 gives a
    lower bound 0, a zero lower bound of est2 an upper bound +inf; a zero
    est1 gives [0, hi1 / lo2]. NaN where est2 is 0."""
    e1, l1, h1 = (np.asarray(a, dtype=np.float64) for a in (est1, lo1, hi1))
    e2, l2, h2 = (np.asarray(a, dtype=np.float64) for a in (est2, lo2, hi2))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(e1) - np.log(e2)
        lower = log_ratio - np.sqrt((np.log(e1) - np.log(l1)) ** 2 + (np.log(h2) - np.log(e2)) ** 2)
        upper = log_ratio + np.sqrt((np.log(h1) - np.log(e1)) ** 2 + (np.log(e2) - np.log(l2)) ** 2)
        lower, upper = np.exp(lower), np.exp(upper)
        zero = (e1 == 0) & (e2 > 0)
        lower = np.where(zero, 0.0, lower)
        upper = np.where(zero, h1 / l2, upper)
        undefined = ~(e2 > 0)
    return np.where(undefined, np.nan, lower), np.where(undefined, np.nan, upper)
