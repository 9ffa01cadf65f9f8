"""A window is a ring of epoch-aligned buckets; its total is a sum of buckets."""

from __future__ import annotations

import json

import numpy as np
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.window import Window

LAYOUT = CellLayout.from_spec(Subgroups((Attribute("sex", values=("female", "male")),), ()))
HOUR = 3600.0


def events(times: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(times)
    cells = LAYOUT.assign({"sex": ["female", "male"] * (n // 2) + ["female"] * (n % 2)}, n)
    return np.array(times), cells, np.linspace(0.0, 1.0, n), np.arange(n) % 2


def test_total_holds_the_buckets_of_the_span_and_nothing_older() -> None:
    window = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=24 * HOUR)
    times = [t * HOUR + 10 for t in range(30)]
    dropped = window.update(*events(times))
    assert dropped == 6  # hours 0..5 fell out of the 24-bucket ring
    now = 29 * HOUR + 20
    assert window.total(now).histogram.sum(axis=(1, 2))[0] == 24
    assert window.total(now, span_seconds=3 * HOUR).histogram.sum(axis=(1, 2))[0] == 3
    assert window.total(now + 48 * HOUR).is_empty()


def test_a_window_total_equals_statistics_of_the_same_events() -> None:
    window = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=6 * HOUR)
    times, cells, scores, labels = events([h * 1800.0 for h in range(12)])
    window.update(times, cells, scores, labels)
    direct = Statistics.empty(LAYOUT.cells, 0.5)
    direct.update(cells, scores, labels)
    total = window.total(11 * 1800.0)
    assert np.array_equal(total.histogram, direct.histogram)
    np.testing.assert_allclose(total.score_sums, direct.score_sums, rtol=1e-12)


def test_two_pods_windows_sum_bucket_by_bucket() -> None:
    left = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=4 * HOUR)
    right = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=4 * HOUR)
    both = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=4 * HOUR)
    times, cells, scores, labels = events([m * 600.0 for m in range(30)])
    left.update(times[::2], cells[::2], scores[::2], labels[::2])
    right.update(times[1::2], cells[1::2], scores[1::2], labels[1::2])
    both.update(times, cells, scores, labels)
    now = 30 * 600.0
    summed = left.total(now) + right.total(now)
    assert np.array_equal(summed.histogram, both.total(now).histogram)


def test_a_window_survives_its_json_form() -> None:
    window = Window(LAYOUT.cells, 0.5, bucket_seconds=HOUR, span_seconds=4 * HOUR)
    window.update(*events([0.0, 10.0, HOUR + 1, 2 * HOUR + 5]))
    copy = Window.from_dict(json.loads(json.dumps(window.to_dict())))
    assert copy.bucket_indices() == window.bucket_indices() == [0, 1, 2]
    assert np.array_equal(copy.total(3 * HOUR).histogram, window.total(3 * HOUR).histogram)
