"""Label-free score statistics merge by addition and agree with the rows they count."""

from __future__ import annotations

import json

import numpy as np
import pytest
from equiguard.engine.scores import ScoreStatistics, sum_scores
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout

LAYOUT = CellLayout.from_spec(Subgroups((Attribute("sex", values=("female", "male")),), ()))
RNG = np.random.default_rng(7)


def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    sexes = RNG.choice(["female", "male", "x"], n)
    return LAYOUT.assign({"sex": list(sexes)}, n), RNG.random(n)


def test_two_pods_scores_sum_to_the_pooled_scores() -> None:
    cells, scores = rows(500)
    left, right, pooled = (ScoreStatistics.empty(LAYOUT.cells, 0.3) for _ in range(3))
    left.update(cells[:200], scores[:200])
    right.update(cells[200:], scores[200:])
    pooled.update(cells, scores)
    total = sum_scores([left, right])
    assert np.array_equal(total.counts, pooled.counts)
    np.testing.assert_allclose(total.score_sums, pooled.score_sums, rtol=1e-12)


def test_flagged_counts_the_predictions_at_or_above_the_threshold_per_cell() -> None:
    cells, scores = rows(400)
    stats = ScoreStatistics.empty(LAYOUT.cells, 0.3)
    stats.update(cells, scores)
    for index, cell in enumerate(LAYOUT.cells):
        in_cell = (cells == LAYOUT.cell_index(*cell)).any(axis=1)
        assert stats.flagged()[index] == int((scores[in_cell] >= 0.3).sum())
        assert stats.score_sums[index].sum() == pytest.approx(scores[in_cell].sum())


def test_the_scores_of_labelled_statistics_are_those_of_their_rows() -> None:
    cells, scores = rows(300)
    labelled = Statistics.empty(LAYOUT.cells, 0.3)
    labelled.update(cells, scores, RNG.integers(0, 2, 300))
    direct = ScoreStatistics.empty(LAYOUT.cells, 0.3)
    direct.update(cells, scores)
    direct.record_outcomes(cells)
    derived = ScoreStatistics.of_labelled(labelled)
    assert np.array_equal(derived.counts, direct.counts)
    assert np.array_equal(derived.labelled, direct.labelled)


def test_score_statistics_survive_their_json_form() -> None:
    cells, scores = rows(100)
    stats = ScoreStatistics.empty(LAYOUT.cells, 0.3, score_bins=20)
    stats.update(cells, scores)
    stats.record_outcomes(cells[:40])
    back = ScoreStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert back.same_layout(stats)
    assert np.array_equal(back.counts, stats.counts)
    assert np.array_equal(back.labelled, stats.labelled)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "x"}, "format: expected"),
        ({"counts": [[1.5] * 21] * 4}, "counts: counts must be whole numbers"),
        ({"labelled": [1, 2]}, "labelled: has shape"),
        ({"threshold": 2}, "threshold: must be a number in [0, 1]"),
    ],
)
def test_bad_score_statistics_name_the_field(change: dict[str, object], message: str) -> None:
    data = ScoreStatistics.empty(LAYOUT.cells, 0.3, score_bins=20).to_dict() | change
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ScoreStatistics.from_dict(data)


def test_scores_outside_the_unit_interval_are_refused() -> None:
    stats = ScoreStatistics.empty(LAYOUT.cells, 0.3)
    with pytest.raises(ValueError, match="scores must lie in"):
        stats.update(LAYOUT.assign({"sex": ["female"]}, 1), np.array([1.2]))
