"""How sure an evaluation must be so that continuous monitoring stays honest.

An SLO is evaluated every minute on a sliding window. Testing each
evaluation at 95% would make a false alarm near certain within a month. An
SLO's `confidence` is therefore read as a guarantee for the whole monitoring
horizon: a model that meets the SLO is declared Violated at any evaluation in
the horizon with probability at most `1 - confidence`.

The alpha of the horizon is spent on the expected number of times the
window statistic can newly cross the bound (a scan-statistic correction).
Over the horizon H, a sliding window of width W carried by a stream of
roughly steady information behaves like the moving sum of a Brownian motion,
whose correlation is 1 - |s|/W; the expected number of up-crossings of a
level u is about u*phi(u) per window width (Pickands, Siegmund). While the
window is still filling, the statistic is a normalised cumulative sum,
stationary in log-time with correlation exp(-|ds|/2); filling from 1/R of
the window to all of it adds about (ln R / 2) * u*phi(u). The per-comparison
one-sided level u solves

    m * [ (1 - Phi(u)) + u*phi(u) * ((H - W)+ / W + ln(R) / 2) ] = 1 - confidence

with m the number of comparisons of the SLO (Bonferroni within one
evaluation). bench/engine_monitoring.py measures the false-alarm rate and the
detection cost by simulation; docs/engine.md reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class MonitoringPlan:
    horizon_seconds: float = 30 * 86400.0
    # The window is taken to fill from 1/fill_ratio of its content to all of it.
    fill_ratio: float = 100.0


DEFAULT_PLAN = MonitoringPlan()


def crossings_per_level(window_seconds: float, plan: MonitoringPlan) -> float:
    """The multiplier K of u*phi(u): windows slid through plus the filling phase."""
    slid = max(plan.horizon_seconds - window_seconds, 0.0) / window_seconds
    return slid + 0.5 * math.log(plan.fill_ratio)


@lru_cache(maxsize=1024)
def critical_z(
    false_alarm: float, comparisons: int, window_seconds: float, plan: MonitoringPlan | None
) -> float:
    """One-sided normal quantile each comparison is tested at.

    `plan=None` is a single evaluation (an offline audit): Bonferroni only.
    """
    if not 0.0 < false_alarm < 1.0 or comparisons < 1:
        raise ValueError("need 0 < false_alarm < 1 and at least one comparison")
    target = false_alarm / comparisons
    if plan is None:
        return _NORMAL.inv_cdf(1.0 - target)
    looks = crossings_per_level(window_seconds, plan)

    def excess(u: float) -> float:
        return 1.0 - _NORMAL.cdf(u) + looks * u * _NORMAL.pdf(u) - target

    # excess decreases in u on [1, inf) (u*phi(u) peaks at u = 1); bisect there.
    low, high = 1.0, 40.0
    if excess(low) <= 0.0:
        return _NORMAL.inv_cdf(1.0 - target)
    for _ in range(100):
        middle = 0.5 * (low + high)
        if excess(middle) > 0.0:
            low = middle
        else:
            high = middle
    return high


def two_sided_confidence(z: float) -> float:
    """The level of a two-sided interval whose bounds are at +-z."""
    return 1.0 - 2.0 * (1.0 - _NORMAL.cdf(z))
