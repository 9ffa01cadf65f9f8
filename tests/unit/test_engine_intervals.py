"""Wilson and Newcombe intervals equal statsmodels'; ratio intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from equiguard.engine.intervals import (
    log_ratio_interval,
    newcombe_difference,
    wilson_interval,
    z_value,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

CONFIDENCE = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999])


@st.composite
def proportion(draw: st.DrawFn) -> tuple[int, int]:
    trials = draw(st.integers(1, 5000))
    return draw(st.integers(0, trials)), trials


@settings(max_examples=200, deadline=None)
@given(proportion(), CONFIDENCE)
def test_wilson_interval_equals_statsmodels(p: tuple[int, int], confidence: float) -> None:
    successes, trials = p
    low, high = wilson_interval(successes, trials, confidence)
    expected = proportion_confint(successes, trials, alpha=1 - confidence, method="wilson")
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(proportion(), proportion(), CONFIDENCE)
def test_newcombe_difference_equals_statsmodels(
    a: tuple[int, int], b: tuple[int, int], confidence: float
) -> None:
    low, high = newcombe_difference(a[0], a[1], b[0], b[1], confidence)
    expected = confint_proportions_2indep(
        a[0], a[1], b[0], b[1], method="newcomb", compare="diff", alpha=1 - confidence
    )
    assert (float(low), float(high)) == pytest.approx(expected, abs=1e-12)


def test_intervals_are_vectorized_and_undefined_without_trials() -> None:
    low, high = wilson_interval(np.array([0, 5, 3]), np.array([0, 10, 3]), 0.95)
    assert np.isnan(low[0]) and np.isnan(high[0])
    assert low[1] < 0.5 < high[1]
    assert high[2] == 1.0


@settings(max_examples=100, deadline=None)
@given(proportion(), proportion())
def test_log_ratio_interval_contains_the_ratio_and_is_positive(
    a: tuple[int, int], b: tuple[int, int]
) -> None:
    p1, p2 = a[0] / a[1], b[0] / b[1]
    lo1, hi1 = wilson_interval(a[0], a[1], 0.95)
    lo2, hi2 = wilson_interval(b[0], b[1], 0.95)
    low, high = log_ratio_interval(p1, lo1, hi1, p2, lo2, hi2)
    if p2 == 0:
        assert np.isnan(low) and np.isnan(high)
    else:
        assert 0.0 <= low <= p1 / p2 <= high


def test_log_ratio_interval_covers_the_true_ratio_at_about_its_level() -> None:
    rng = np.random.default_rng(11)
    n, p1, p2 = 400, 0.3, 0.4
    x1, x2 = rng.binomial(n, p1, 4000), rng.binomial(n, p2, 4000)
    lo1, hi1 = wilson_interval(x1, n, 0.95)
    lo2, hi2 = wilson_interval(x2, n, 0.95)
    low, high = log_ratio_interval(x1 / n, lo1, hi1, x2 / n, lo2, hi2)
    coverage = np.mean((low <= p1 / p2) & (p1 / p2 <= high))
    assert 0.93 <= coverage <= 0.97


def test_z_value_is_the_normal_quantile() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.95, sides=1) == pytest.approx(1.644854, abs=1e-6)
