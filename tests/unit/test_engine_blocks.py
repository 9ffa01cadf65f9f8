"""Large batches are counted per block of dimensions: the same statistics as row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from equiguard.engine.metrics import compute_metrics
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics, _block_plans
from equiguard.engine.subgroups import CellLayout
from fairlearn.metrics import MetricFrame, true_positive_rate

MANIFEST = Path(__file__).parents[2] / "examples" / "readmission" / "clinicalmodel.yaml"
MODEL = parse_model(yaml.safe_load(MANIFEST.read_text()))
LAYOUT = CellLayout.from_spec(MODEL.subgroups)
ROWS = 20_000


def columns(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "race": rng.choice(["White", "Black", "Asian", "Hispanic", "Other", "Martian"], n),
        "sex": rng.choice(["female", "male", "x"], n),
        "age_band": rng.uniform(0, 110, n),
        "payer": rng.choice(["Medicare", "Medicaid", "Commercial", "SelfPay"], n),
        "language": rng.choice(["English", "Spanish", "Other"], n),
        "adi_quintile": rng.integers(0, 7, n),
    }


@pytest.fixture(scope="module")
def batch() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    data = columns(ROWS, 3)
    rng = np.random.default_rng(4)
    # Ties at bin edges and the threshold, and both ends of [0, 1].
    scores = np.where(
        rng.random(ROWS) < 0.2, rng.choice([0.0, 0.3, 0.5, 1.0], ROWS), rng.random(ROWS)
    )
    labels = (rng.random(ROWS) < scores).astype(np.int64)
    return data, LAYOUT.assign(data, ROWS), scores, labels


def test_the_batch_is_large_enough_to_be_counted_by_blocks(batch: tuple) -> None:
    plans = _block_plans(LAYOUT.cells, Statistics.empty(LAYOUT.cells, 0.3).score_bins)
    assert plans is not None
    assert plans.worth_it(ROWS)
    assert not plans.worth_it(100)


def test_one_large_batch_equals_the_same_rows_in_small_batches(batch: tuple) -> None:
    _, cells, scores, labels = batch
    whole = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    whole.update(cells, scores, labels)
    pieces = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    for start in range(0, ROWS, 100):
        rows = slice(start, start + 100)
        pieces.update(cells[rows], scores[rows], labels[rows])
    assert np.array_equal(whole.histogram, pieces.histogram)
    np.testing.assert_allclose(whole.score_sums, pieces.score_sums, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(whole.squared_error_sums, pieces.squared_error_sums, rtol=1e-12)
    np.testing.assert_allclose(
        whole.squared_error_squares, pieces.squared_error_squares, rtol=1e-12
    )


def test_row_major_cells_count_the_same_as_column_major(batch: tuple) -> None:
    _, cells, scores, labels = batch
    assert cells.flags.f_contiguous
    column_major = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    column_major.update(cells, scores, labels)
    row_major = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    row_major.update(np.ascontiguousarray(cells), scores, labels)
    assert np.array_equal(column_major.histogram, row_major.histogram)


def test_tpr_of_a_large_batch_equals_fairlearn_exactly(batch: tuple) -> None:
    data, cells, scores, labels = batch
    stats = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    stats.update(cells, scores, labels)
    metrics = compute_metrics(stats)
    race = LAYOUT.groups["race"]
    known = np.isin(data["race"], race[:-1])
    frame = MetricFrame(
        metrics=true_positive_rate,
        y_true=labels,
        y_pred=(scores >= MODEL.threshold).astype(int),
        sensitive_features=pd.Series(np.where(known, data["race"], "unknown")),
    )
    for group, expected in frame.by_group.items():
        assert metrics.value("tpr", "race", str(group)) == expected


def test_a_cell_of_another_dimension_is_refused(batch: tuple) -> None:
    _, cells, scores, labels = batch
    wrong = cells.copy(order="F")
    wrong[5, 1] = LAYOUT.cell_index("sex", "female")  # a sex cell in the race column
    stats = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    before = stats.histogram.copy()
    with pytest.raises(ValueError, match="outside its dimension"):
        stats.update(wrong, scores, labels)
    assert np.array_equal(stats.histogram, before), "a refused batch adds nothing"
