"""Statistics.update adds exactly what a plain loop over the events adds, on either path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics, _block_plans
from equiguard.engine.subgroups import CellLayout

MANIFEST = Path(__file__).parents[2] / "examples" / "readmission" / "clinicalmodel.yaml"
MODEL = parse_model(yaml.safe_load(MANIFEST.read_text()))
LAYOUT = CellLayout.from_spec(MODEL.subgroups)
PLANS = _block_plans(LAYOUT.cells, Statistics.empty(LAYOUT.cells, 0.3).score_bins)


def events(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with unknown, undeclared and missing values, and scores on every edge."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["White", "Black", "Asian", "Hispanic", "Other", "Martian", None], n)
    columns = {
        "race": list(race),
        "sex": rng.choice(["female", "male", "x", ""], n),
        "age_band": np.where(rng.random(n) < 0.1, np.nan, rng.uniform(-5, 120, n)),
        "payer": rng.choice(["Medicare", "Medicaid", "Commercial", "SelfPay", "cash"], n),
        # no language column at all: every row's language is unknown
        "adi_quintile": rng.integers(0, 8, n),
    }
    edges = [0.0, 0.01, 0.3, MODEL.threshold, 0.99, 1.0, np.nextafter(1.0, 0.0)]
    scores = np.where(rng.random(n) < 0.3, rng.choice(edges, n), rng.random(n))
    labels = (rng.random(n) < scores).astype(np.int64)
    return LAYOUT.assign(columns, n), scores, labels


def one_event_at_a_time(cells: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> Statistics:
    stats = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    bins = stats.score_bins
    for row, score, label in zip(cells.tolist(), scores.tolist(), labels.tolist(), strict=True):
        bin_ = min(int(score * bins), bins - 1) + (score >= stats.threshold)
        error = (score - label) ** 2
        for cell in row:
            stats.histogram[cell, label, bin_] += 1
            stats.score_sums[cell, label, bin_] += score
            stats.squared_error_sums[cell] += error
            stats.squared_error_squares[cell] += error * error
    return stats


@pytest.mark.parametrize(("rows", "seed"), [(1, 0), (300, 1), (5_000, 2), (40_000, 3), (70_001, 4)])
def test_update_equals_a_loop_over_events(rows: int, seed: int) -> None:
    cells, scores, labels = events(rows, seed)
    stats = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    stats.update(cells, scores, labels)
    expected = one_event_at_a_time(cells, scores, labels)
    assert np.array_equal(stats.histogram, expected.histogram)
    np.testing.assert_allclose(stats.score_sums, expected.score_sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(stats.squared_error_sums, expected.squared_error_sums, rtol=1e-12)
    np.testing.assert_allclose(
        stats.squared_error_squares, expected.squared_error_squares, rtol=1e-12
    )


def test_both_paths_are_covered() -> None:
    assert PLANS is not None
    assert not PLANS.worth_it(300)
    assert PLANS.worth_it(5_000)


def test_every_dimension_still_sums_to_overall() -> None:
    cells, scores, labels = events(20_000, 5)
    stats = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    stats.update(cells, scores, labels)
    overall = stats.histogram[LAYOUT.cell_index("overall", "all")]
    for dimension in LAYOUT.dimensions:
        first = LAYOUT.cell_index(dimension, LAYOUT.groups[dimension][0])
        block = stats.histogram[first : first + len(LAYOUT.groups[dimension])]
        assert np.array_equal(block.sum(axis=0), overall), dimension
