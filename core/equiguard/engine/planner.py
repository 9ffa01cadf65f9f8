"""How many more outcomes would decide an undecided comparison.

An SLO comparison is decided when its confidence interval lies wholly within
the threshold (Met) or wholly past it (a breach). At the current rates, an
interval's half-widths shrink like z(k·v) / (z(v)·sqrt(k)) when every group's
denominator grows k-fold (v the comparison's outcomes per group, z the
boundary the engine uses at that many). `scale_to_decide` finds the smallest
such k; `normal_outcomes_per_group` is the textbook normal sample size of a
difference of two proportions, the reference the planner is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

from equiguard.engine.comparison import Comparison

_NORMAL = NormalDist()
_LARGEST_SCALE = 1e6


def decided(comparison: Comparison, lower: float, upper: float) -> bool:
    """Whether an interval (on the engine's scale) is within or past the threshold."""
    return comparison.within(lower, upper) or comparison.past(lower, upper)


def scale_to_decide(
    comparison: Comparison,
    estimate: float,
    lower: float,
    upper: float,
    z_at: Callable[[float], float],
) -> float | None:
    """The smallest k >= 1 by which the denominators must grow, at the current
    rates, for the interval to decide; None when no growth would (an estimate on
    the threshold) or the interval cannot be scaled (an unbounded side).

    `estimate`, `lower`, `upper` are on the engine's scale (logs for ratios);
    `z_at(k)` is the z the engine would use with k times the outcomes.
    """
    below, above = estimate - lower, upper - estimate
    if not all(math.isfinite(x) for x in (estimate, below, above)):
        return None
    z_now = z_at(1.0)

    def decides(k: float) -> bool:
        shrink = z_at(k) / (z_now * math.sqrt(k))
        return decided(comparison, estimate - below * shrink, estimate + above * shrink)

    if decides(1.0):
        return 1.0
    high = 2.0
    while not decides(high):
        if high >= _LARGEST_SCALE:
            return None
        high *= 2.0
    low = high / 2.0
    for _ in range(60):
        middle = math.sqrt(low * high)
        if decides(middle):
            high = middle
        else:
            low = middle
        if high / low < 1.0 + 1e-6:
            break
    return high


def normal_outcomes_per_group(
    p1: float, p2: float, margin: float, alpha: float, power: float = 0.5
) -> float:
    """Outcomes per group (equal groups) for a one-sided z-test of p1 - p2 at
    `alpha` to detect `margin` with `power`: (z_a + z_b)^2 (p1 q1 + p2 q2) / margin^2."""
    if margin <= 0 or not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("need margin > 0, 0 < alpha < 1 and 0 < power < 1")
    z = _NORMAL.inv_cdf(1.0 - alpha) + _NORMAL.inv_cdf(power)
    return z * z * (p1 * (1.0 - p1) + p2 * (1.0 - p2)) / (margin * margin)
