"""Every metric equals fairlearn's MetricFrame / scikit-learn on the pooled rows.

Exactly for the count-based metrics; within the documented bin error for
AUROC; ECE against the same binned sum computed from the raw rows.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.spec import Attribute, Intersection, Subgroups
from equiguard.engine.stats import Statistics, sum_statistics
from equiguard.engine.subgroups import CellLayout
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

SUBGROUPS = Subgroups(
    attributes=(
        Attribute("race", values=("White", "Black", "Asian")),
        Attribute("age_band", edges=(18.0, 65.0), labels=("18-64", "65+")),
    ),
    intersections=(
        Intersection(
            "race_x_age",
            ("race", "age_band"),
            ("White/18-64", "White/65+", "Black/18-64", "Black/65+", "Asian/18-64", "Asian/65+"),
        ),
    ),
)
LAYOUT = CellLayout.from_spec(SUBGROUPS)
THRESHOLD = 0.3

# Scores include ties, both ends, the threshold itself and bin edges.
SCORES = st.one_of(
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0]), st.floats(0.0, 1.0, allow_nan=False)
)
ROWS = st.lists(
    st.tuples(
        SCORES,
        st.integers(0, 1),
        st.sampled_from(["White", "Black", "Asian", "Other", None]),
        st.sampled_from([10.0, 30.0, 70.0, None]),
    ),
    max_size=80,
)


def table(rows: list[tuple[float, int, str | None, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["score", "label", "race", "age"]).astype(
        {"score": float, "label": int, "race": object, "age": float}
    )


def statistics_of(frame: pd.DataFrame) -> Statistics:
    stats = Statistics.empty(LAYOUT.cells, THRESHOLD)
    cells = LAYOUT.assign(
        {"race": frame["race"].to_numpy(object), "age_band": frame["age"].to_numpy(float)},
        len(frame),
    )
    stats.update(cells, frame["score"].to_numpy(), frame["label"].to_numpy())
    return stats


def race_group(value: object) -> str:
    return value if value in ("White", "Black", "Asian") else "unknown"


# fairlearn returns 0 where a rate is undefined; the engine returns null, so
# each reference is paired with the count that must be non-zero.
REFERENCE = {
    "selectionRate": (selection_rate, "n"),
    "tpr": (true_positive_rate, "positives"),
    "fpr": (false_positive_rate, "negatives"),
    "fnr": (false_negative_rate, "positives"),
    "tnr": (true_negative_rate, "negatives"),
    "ppv": (partial(precision_score, zero_division=0), "predictedPositives"),
    "npv": (partial(precision_score, pos_label=0, zero_division=0), "predictedNegatives"),
}


@settings(max_examples=30, deadline=None)
@given(ROWS)
def test_count_metrics_equal_fairlearn_metricframe_exactly(rows: list) -> None:
    frame = table(rows)
    metrics = compute_metrics(statistics_of(frame))
    if frame.empty:
        assert metrics.count("n", "overall", "all") == 0
        assert all(metrics.overall(m) is None for m in REFERENCE)
        return
    decisions = (frame["score"] >= THRESHOLD).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame_by_race = MetricFrame(
            metrics={name: fn for name, (fn, _) in REFERENCE.items()} | {"n": count},
            y_true=frame["label"],
            y_pred=decisions,
            sensitive_features=frame["race"].map(race_group).rename("race"),
        )
    for group, expected in frame_by_race.by_group.iterrows():
        assert metrics.count("n", "race", str(group)) == expected["n"]
        for name, (_, denominator) in REFERENCE.items():
            ours = metrics.value(name, "race", str(group))
            if metrics.count(denominator, "race", str(group)) == 0:
                assert ours is None
            else:
                assert ours == expected[name], (name, group)
    prevalence = metrics.overall("prevalence")
    assert prevalence == frame["label"].mean()
    for group in ("White", "Black", "Asian", "unknown"):
        if group not in frame_by_race.by_group.index:
            assert metrics.count("n", "race", group) == 0
            assert metrics.value("tpr", "race", group) is None


@settings(max_examples=60, deadline=None)
@given(ROWS)
def test_brier_auroc_and_ece_match_scikit_learn_within_the_documented_error(rows: list) -> None:
    frame = table(rows)
    stats = statistics_of(frame)
    metrics = compute_metrics(stats)
    for group in ("White", "Black", "Asian", "unknown"):
        part = frame[frame["race"].map(race_group) == group]
        labels, scores = part["label"].to_numpy(), part["score"].to_numpy()
        brier = metrics.value("brier", "race", group)
        auroc = metrics.value("auroc", "race", group)
        ece = metrics.value("ece", "race", group)
        if part.empty:
            assert brier is None and auroc is None and ece is None
            continue
        assert brier == pytest.approx(brier_score_loss(labels, scores, labels=[0, 1]), abs=1e-12)
        assert ece == pytest.approx(raw_ece(scores, labels), abs=1e-12)
        if labels.min() == labels.max():
            assert auroc is None
        else:
            bound = metrics.auroc_error_bound[LAYOUT.cell_index("race", group)]
            assert abs(auroc - roc_auc_score(labels, scores)) <= bound + 1e-12
            low, high = metrics.interval("auroc", "race", group) or (math.nan, math.nan)
            assert low <= auroc <= high


def raw_ece(scores: np.ndarray, labels: np.ndarray, bins: int = 10, fine: int = 100) -> float:
    """The documented ECE from raw rows: fine bin floor(s * 100), grouped by tens."""
    coarse = np.minimum((scores * fine).astype(int), fine - 1) // (fine // bins)
    total = 0.0
    for b in range(bins):
        chosen = coarse == b
        total += abs(labels[chosen].sum() - scores[chosen].sum())
    return total / len(scores)


def test_ece_equals_the_sum_over_scikit_learn_calibration_curve_bins() -> None:
    rng = np.random.default_rng(7)
    scores = rng.random(5000)
    labels = (rng.random(5000) < scores**1.3).astype(int)
    frame = pd.DataFrame({"score": scores, "label": labels, "race": "White", "age": 30.0})
    ece = compute_metrics(statistics_of(frame)).overall("ece")
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    weights = counts[counts > 0] / len(scores)
    assert ece == pytest.approx(float((weights * np.abs(observed - predicted)).sum()), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(ROWS, st.integers(1, 4), st.randoms(use_true_random=False))
def test_statistics_summed_from_shards_equal_the_pooled_statistics(
    rows: list, shards: int, rnd: random.Random
) -> None:
    frame = table(rows)
    owner = np.array([rnd.randrange(shards) for _ in range(len(frame))], dtype=int)
    parts = [statistics_of(frame[owner == k]) for k in range(shards)]
    pooled, summed = statistics_of(frame), sum_statistics(parts)
    assert np.array_equal(summed.histogram, pooled.histogram)
    np.testing.assert_allclose(summed.score_sums, pooled.score_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        summed.squared_error_sums, pooled.squared_error_sums, rtol=1e-12, atol=1e-12
    )
    summed_report = metrics_report(compute_metrics(summed))
    pooled_report = metrics_report(compute_metrics(pooled))
    for dimension, groups in pooled_report.items():
        for group, block in groups.items():
            for name in ("n", "tp", "fp", "tn", "fn", "tpr", "fpr", "ppv", "selectionRate"):
                assert summed_report[dimension][group][name] == block[name]


@settings(max_examples=30, deadline=None)
@given(ROWS)
def test_statistics_survive_the_json_format_unchanged(rows: list) -> None:
    stats = statistics_of(table(rows))
    copy = Statistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert copy.cells == stats.cells and copy.threshold == stats.threshold
    assert np.array_equal(copy.histogram, stats.histogram)
    assert np.array_equal(copy.score_sums, stats.score_sums)
    assert np.array_equal(copy.squared_error_squares, stats.squared_error_squares)


def test_each_dimension_sums_to_overall_because_no_row_is_dropped() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "score": rng.random(500),
            "label": rng.integers(0, 2, 500),
            "race": rng.choice(
                np.array(["White", "Black", "Asian", "Martian", None], dtype=object), 500
            ),
            "age": rng.choice([5.0, 20.0, 70.0, np.nan], 500),
        }
    )
    metrics = compute_metrics(statistics_of(frame))
    for dimension in ("race", "age_band", "race_x_age"):
        groups = metrics.groups(dimension)
        assert groups[-1] == "unknown"
        assert sum(metrics.count("n", dimension, g) for g in groups) == 500


def test_undefined_metrics_are_null_in_the_report_never_zero() -> None:
    frame = pd.DataFrame(
        {"score": [0.9, 0.1], "label": [0, 0], "race": ["White", "White"], "age": [30.0, 30.0]}
    )
    block = metrics_report(compute_metrics(statistics_of(frame)))["race"]["White"]
    assert block["tpr"] is None and block["fnr"] is None and block["auroc"] is None
    assert block["intervals"]["tpr"] is None
    assert block["fpr"] == 0.5 and block["tnr"] == 0.5
    assert block["n"] == 2 and block["positives"] == 0


def test_comparisons_read_the_same_for_every_metric() -> None:
    frame = pd.DataFrame(
        {
            "score": [0.9, 0.9, 0.1, 0.9, 0.1, 0.1],
            "label": [1, 1, 1, 1, 1, 1],
            "race": ["White"] * 3 + ["Black"] * 3,
            "age": [30.0] * 6,
        }
    )
    metrics = compute_metrics(statistics_of(frame))
    assert metrics.by_group("tpr", "race") == {
        "White": 2 / 3,
        "Black": 1 / 3,
        "Asian": None,
        "unknown": None,
    }
    assert metrics.overall("tpr") == 0.5
    assert metrics.difference("tpr", "race")["Black"] == pytest.approx(1 / 3 - 0.5)
    assert metrics.ratio("tpr", "race", "best")["Black"] == pytest.approx(0.5)
    assert metrics.max_gap("tpr", "race") == pytest.approx(1 / 3)
