"""A score window is a ring of epoch-aligned buckets of ScoreStatistics, like `Window`."""

from __future__ import annotations

import numpy as np
from equiguard.engine.score_window import ScoreWindow
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.window import Window

LAYOUT = CellLayout.from_spec(Subgroups((Attribute("sex", values=("female", "male")),), ()))
HOUR = 3600.0


def events(times: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(times)
    cells = LAYOUT.assign({"sex": ["female", "male"] * (n // 2) + ["female"] * (n % 2)}, n)
    return np.array(times), cells, np.linspace(0.0, 1.0, n)


def window(span_hours: float = 24) -> ScoreWindow:
    return ScoreWindow(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=span_hours * HOUR)


def test_total_holds_the_buckets_of_the_span_and_nothing_older() -> None:
    scores = window()
    dropped = scores.update(*events([t * HOUR + 10 for t in range(30)]))
    assert dropped == 6  # hours 0..5 fell out of the 24-bucket ring
    now = 29 * HOUR + 20
    assert scores.total(now).counts[0].sum() == 24
    assert scores.total(now, span_seconds=3 * HOUR).counts[0].sum() == 3
    assert scores.total(now + 48 * HOUR).counts.sum() == 0
    assert scores.bucket_indices() == list(range(6, 30))


def test_buckets_align_with_the_labelled_windows_buckets() -> None:
    times, cells, values = events([h * 1700.0 + 13 for h in range(40)])
    scores, labelled = (
        window(),
        Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=HOUR * 24),
    )
    scores.update(times, cells, values)
    labelled.update(times, cells, values, np.arange(40) % 2)
    assert scores.bucket_indices() == labelled.bucket_indices()
    now = times[-1]
    for span in (HOUR, 5 * HOUR, 24 * HOUR):
        expected = ScoreStatistics.of_labelled(labelled.total(now, span))
        assert scores.total(now, span).counts.tolist() == expected.counts.tolist()


def test_a_window_total_equals_score_statistics_of_the_same_predictions() -> None:
    scores = window(6)
    times, cells, values = events([h * 1800.0 for h in range(12)])
    scores.update(times, cells, values)
    direct = ScoreStatistics.empty(LAYOUT.cells, 0.5)
    direct.update(cells, values)
    total = scores.total(11 * 1800.0)
    assert np.array_equal(total.counts, direct.counts)
    np.testing.assert_allclose(total.score_sums, direct.score_sums, rtol=1e-12)


def test_an_outcome_counts_in_the_bucket_of_its_prediction_not_of_its_arrival() -> None:
    scores = window()
    times, cells, values = events([0.0, HOUR + 5, 5 * HOUR + 1])
    scores.update(times, cells, values)
    scores.record_outcomes(times[:1], cells[:1])  # the outcome of the first, arriving hours later
    now = 5 * HOUR + 2
    assert scores.total(now, HOUR).labelled.sum() == 0
    assert scores.total(now).labelled.tolist() == [1, 1, 0, 0]  # overall, female, male, unknown


def test_two_pods_windows_sum_to_the_pooled_window() -> None:
    left, right, both = window(4), window(4), window(4)
    times, cells, values = events([m * 600.0 for m in range(30)])
    left.update(times[::2], cells[::2], values[::2])
    right.update(times[1::2], cells[1::2], values[1::2])
    both.update(times, cells, values)
    # An outcome joined by the other pod than the one that counted its score.
    right.record_outcomes(times[:4:2], cells[:4:2])
    both.record_outcomes(times[:4:2], cells[:4:2])
    now = 30 * 600.0
    summed = left.total(now)
    summed.merge(right.total(now))
    assert summed.to_dict() == both.total(now).to_dict()
