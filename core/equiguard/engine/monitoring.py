"""How sure an evaluation must be so that continuous monitoring stays honest.

An SLO is evaluated every minute on a sliding window. Testing each
evaluation at 95% would make a false alarm near certain within a month. An
SLO's `confidence` is therefore read as a guarantee for the whole monitoring
horizon: a model that meets the SLO is declared Violated (or an SLO it
breaks declared Met) at any evaluation in the horizon with probability at
most `1 - confidence`.

The guarantee is built from confidence sequences, valid by construction at
every evaluation, rather than from an approximation of how a window's
statistic crosses a level:

- **Epochs.** Time is cut into epochs that start every `window /
  epochs_per_window` seconds, at multiples of that stride since the Unix
  epoch (so every pod and the operator agree without sharing state). An
  epoch's statistics are the cumulative sums from its start, so within an
  epoch the data only grows: a confidence sequence applies. An epoch is used
  until it is a window old, so the evidence is never older than the SLO's
  window and, with two epochs per window, at least half a window of data is
  always in use.
- **Confidence sequence per comparison.** Each comparison's interval is the
  engine's fixed-sample interval (Newcombe, Wilson, MOVER) computed at a z
  that grows with the data: Robbins' normal-mixture boundary in intrinsic
  time, the comparison's effective number of outcomes per group v (the
  harmonic mean of the two denominators),

      z(v)^2 = (1 + rho / v) * (2 ln(1 / a) + ln(1 + v / rho)),

  which a standardised sum crosses with probability at most `a` at any time
  (Ville's inequality on the mixture martingale; asymptotically, as in the
  time-uniform central limit theory of Waudby-Smith et al.).
- **Joint error.** Every epoch that can be in use during a horizon, every
  comparison of the SLO and every SLO of the model share `1 - confidence`
  by a union bound: `a = (1 - confidence) / (epochs * comparisons * slos)`.

bench/engine_monitoring.py measures the false-alarm rate and the detection
cost by simulation; docs/engine.md reports them and the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

_NORMAL = NormalDist()


@dataclass(frozen=True)
class MonitoringPlan:
    # The error is spent over this long. Per epoch the union bound is nearly
    # tight at high traffic, so spending it over 60 days keeps the false alarms
    # of any 30 days well below 1 - confidence (bench/engine_monitoring.py).
    horizon_seconds: float = 60 * 86400.0
    # A new epoch starts every window / epochs_per_window seconds.
    epochs_per_window: int = 2
    # The mixture's rho, in outcomes per group: the boundary is tightest near
    # a few times this many.
    tuning_outcomes: float = 50.0


DEFAULT_PLAN = MonitoringPlan()


def epoch_stride(window_seconds: float, plan: MonitoringPlan) -> float:
    return window_seconds / plan.epochs_per_window


def epoch_spans(now: float, window_seconds: float, plan: MonitoringPlan) -> tuple[float, ...]:
    """How far back each epoch in use reaches at `now`, oldest (most data) first.

    An epoch starts at a multiple of the stride and is used while younger
    than the window; a span is what `Window.total(now, span)` sums.
    """
    stride = epoch_stride(window_seconds, plan)
    newest = math.floor(now / stride) * stride
    ages = [now - (newest - k * stride) for k in range(plan.epochs_per_window)]
    return tuple(sorted((age for age in ages if 0.0 < age < window_seconds), reverse=True))


def epochs_per_horizon(window_seconds: float, plan: MonitoringPlan) -> int:
    """Epochs that can be in use at some time of any horizon: the alpha is split over them."""
    stride = epoch_stride(window_seconds, plan)
    return math.ceil(plan.horizon_seconds / stride) + plan.epochs_per_window


def comparison_alpha(
    false_alarm: float,
    comparisons: int,
    window_seconds: float,
    plan: MonitoringPlan | None,
    slos: int = 1,
) -> float:
    """The error each comparison's interval (two-sided) may spend."""
    if not 0.0 < false_alarm < 1.0 or comparisons < 1 or slos < 1:
        raise ValueError("need 0 < false_alarm < 1, at least one comparison and one SLO")
    epochs = 1 if plan is None else epochs_per_horizon(window_seconds, plan)
    return false_alarm / (comparisons * slos * epochs)


@lru_cache(maxsize=4096)
def mixture_z(alpha: float, outcomes: float, tuning_outcomes: float) -> float:
    """Robbins' two-sided normal-mixture boundary as a z, at `outcomes` per group."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("need 0 < alpha < 1")
    v = max(float(outcomes), 1.0)
    rho = tuning_outcomes
    return math.sqrt((1.0 + rho / v) * (2.0 * math.log(1.0 / alpha) + math.log1p(v / rho)))


def fixed_z(alpha: float) -> float:
    """The z of a single two-sided interval spending `alpha` (an audit, a gate)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("need 0 < alpha < 1")
    return _NORMAL.inv_cdf(1.0 - alpha / 2.0)


def boundary_z(alpha: float, outcomes: float, plan: MonitoringPlan | None) -> float:
    """The z of a comparison with `outcomes` per group: sequential under a plan."""
    if plan is None:
        return fixed_z(alpha)
    return mixture_z(alpha, round(outcomes), plan.tuning_outcomes)


def effective_outcomes(n: float, reference_n: float | None) -> float:
    """The intrinsic time of a comparison: the harmonic mean of its two denominators."""
    if reference_n is None:
        return float(n)
    if n <= 0 or reference_n <= 0:
        return 0.0
    return 2.0 / (1.0 / n + 1.0 / reference_n)


def two_sided_confidence(z: float) -> float:
    """The level of a two-sided interval whose bounds are at +-z."""
    return 1.0 - 2.0 * (1.0 - _NORMAL.cdf(z))
