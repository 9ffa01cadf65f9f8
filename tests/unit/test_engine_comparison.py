"""One comparison object: the engine's scale, bands and distances for every kind."""

from __future__ import annotations

import math

import pytest
from equiguard.engine.comparison import Comparison


def test_ratios_are_judged_on_the_log_scale_so_half_and_double_are_equally_far() -> None:
    ratio = Comparison("ratioToReference", 0.8, "overall")
    assert ratio.distance_past(0.5) == pytest.approx(ratio.distance_past(2.0))
    assert ratio.distance_past(0.9) < 0 < ratio.distance_past(0.7)


def test_gaps_count_in_either_direction_and_floors_only_below() -> None:
    gap = Comparison("maxGap", 0.1)
    assert gap.distance_past(-0.15) == pytest.approx(0.05)
    floor = Comparison("floor", 0.6)
    assert floor.distance_past(0.5) == pytest.approx(0.1)
    assert floor.distance_past(0.9) < 0


def test_an_interval_is_within_past_or_undecided() -> None:
    gap = Comparison("gapToReference", 0.1, "overall")
    assert gap.within(-0.05, 0.08) and not gap.past(-0.05, 0.08)
    assert gap.past(0.12, 0.2) and not gap.within(0.12, 0.2)
    assert not gap.within(0.05, 0.15) and not gap.past(0.05, 0.15)
    assert gap.interval_past(0.12, 0.2) > 0 > gap.interval_past(0.05, 0.15)


def test_a_ratio_of_zero_has_no_log() -> None:
    ratio = Comparison("ratioToReference", 0.8, "overall")
    assert ratio.scale(0.0) == -math.inf
    assert ratio.distance_past(0.0) == -math.inf


def test_charts_mark_both_sides_of_a_ratio() -> None:
    assert Comparison("ratioToReference", 0.8).threshold_lines() == (0.8, 1.25)
    assert Comparison("maxGap", 0.1).threshold_lines() == (0.1,)


def test_each_kind_says_what_its_estimate_measures() -> None:
    gap = Comparison("maxGap", 0.1)
    assert gap.quantity("TPR", "race") == "largest TPR gap between race groups"
    ratio = Comparison("ratioToReference", 0.8, "best")
    assert ratio.quantity("PPV", "sex") == "PPV relative to best"
    assert Comparison("floor", 0.6).axis("TPR") == "lowest TPR"
