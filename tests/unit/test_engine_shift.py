"""Shift signals: each fires on its own kind of change, and none without one."""

from __future__ import annotations

import numpy as np
import pytest
from equiguard.engine.monitoring import DEFAULT_PLAN, fixed_z, mixture_z
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import (
    SIGNALS,
    ShiftSignal,
    detect_shifts,
    evaluate_shifts,
    sequence_z,
    shift_alpha,
    signal_test_count,
)
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.subgroups import CellLayout

LAYOUT = CellLayout.from_spec(Subgroups((Attribute("race", values=("A", "B", "C")),), ()))
WEEK = 7 * 86400.0
ALPHA = shift_alpha(0.01, len(LAYOUT.cells), WEEK)


def stream(
    rng: np.random.Generator,
    n: int,
    shares: tuple[float, float, float] = (0.5, 0.3, 0.2),
    c_beta: float = 2.0,
    c_coverage: float = 0.6,
) -> ScoreStatistics:
    groups = rng.choice(["A", "B", "C"], n, p=list(shares))
    scores = np.where(groups == "C", rng.beta(c_beta, 5.0, n), rng.beta(2.0, 5.0, n))
    cells = LAYOUT.assign({"race": list(groups)}, n)
    stats = ScoreStatistics.empty(LAYOUT.cells, 0.3)
    stats.update(cells, scores)
    coverage = np.where(groups == "C", c_coverage, 0.6)
    stats.record_outcomes(cells[rng.random(n) < coverage])
    return stats


def fired(signals: list[ShiftSignal]) -> set[tuple[str, str]]:
    return {(s.signal, s.group) for s in signals if s.shifted}


def test_no_signal_fires_when_nothing_changed() -> None:
    rng = np.random.default_rng(1)
    reference = stream(rng, 20000)
    for _ in range(20):
        assert fired(detect_shifts(stream(rng, 8000), reference, ALPHA)) == set()


def test_a_score_shift_in_one_group_fires_its_distribution_and_flag_rate_only_there() -> None:
    rng = np.random.default_rng(2)
    signals = detect_shifts(stream(rng, 8000, c_beta=3.0), stream(rng, 20000), ALPHA)
    groups = {
        group for signal, group in fired(signals) if signal in ("scoreDistribution", "flagRate")
    }
    assert "C" in groups and not {"A", "B"} & groups
    assert ("flagRate", "C") in fired(signals)


def test_a_change_of_mix_fires_the_subgroup_mix() -> None:
    rng = np.random.default_rng(3)
    signals = detect_shifts(stream(rng, 8000, shares=(0.4, 0.3, 0.3)), stream(rng, 20000), ALPHA)
    assert {("subgroupMix", "A"), ("subgroupMix", "C")} <= fired(signals)
    assert not any(
        s.signal == "scoreDistribution" and s.group != "all" and s.shifted for s in signals
    )


def test_outcomes_going_missing_in_one_group_fire_its_label_coverage() -> None:
    rng = np.random.default_rng(4)
    signals = detect_shifts(stream(rng, 8000, c_coverage=0.3), stream(rng, 20000), ALPHA)
    assert ("labelCoverage", "C") in fired(signals)
    assert {signal for signal, _ in fired(signals)} <= {"labelCoverage"}


def test_a_group_below_min_samples_reports_no_share_of_its_own_and_no_shift() -> None:
    rng = np.random.default_rng(5)
    signals = detect_shifts(stream(rng, 60, c_beta=6.0), stream(rng, 20000), ALPHA)
    # Its share of the mix is the dimension's, which has enough predictions.
    c = [s for s in signals if s.group == "C" and s.signal != "subgroupMix"]
    assert c and all(s.current is None and not s.shifted for s in c)


def test_every_signal_is_reported_and_counted_in_the_union_bound() -> None:
    rng = np.random.default_rng(6)
    signals = detect_shifts(stream(rng, 4000), stream(rng, 20000), ALPHA)
    assert {s.signal for s in signals} == set(SIGNALS)
    assert len(signals) <= signal_test_count(len(LAYOUT.cells))


def test_the_current_side_is_a_confidence_sequence_wider_than_a_fixed_interval() -> None:
    z = sequence_z(1e-4, np.array([10, 1000, 100000]), DEFAULT_PLAN)
    assert z[1] == pytest.approx(mixture_z(1e-4, 1000, DEFAULT_PLAN.tuning_outcomes))
    assert (z > fixed_z(1e-4)).all()


def test_a_shift_in_any_epoch_in_use_is_reported() -> None:
    rng = np.random.default_rng(7)
    reference = stream(rng, 20000)
    old, recent = stream(rng, 8000), stream(rng, 8000, c_beta=3.0)
    signals = evaluate_shifts([old, recent], reference, 0.01, WEEK)
    assert ("flagRate", "C") in fired(signals)
