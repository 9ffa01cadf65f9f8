"""Time to compute every metric and interval for 24 cells, against fairlearn.

The engine computes all metrics with intervals from the window's sufficient
statistics; the baseline is fairlearn's MetricFrame computing the same
metrics (without intervals) from the window's 100,000 raw rows, one
MetricFrame per attribute. Both run in this process on the same data.

    .venv/bin/python bench/engine_metrics.py [--rows 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd
from equiguard.engine.metrics import compute_metrics
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
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
from harness import Result, Spread, interleave, record
from sklearn.metrics import brier_score_loss, precision_score, roc_auc_score

# overall + race (5 + unknown) + sex (2 + unknown) + age (4 + unknown)
# + payer (4 + unknown) + language (3 + unknown) = 24 cells
SUBGROUPS = Subgroups(
    attributes=(
        Attribute("race", values=("White", "Black", "Asian", "Hispanic", "Other")),
        Attribute("sex", values=("female", "male")),
        Attribute(
            "age_band", edges=(18.0, 45.0, 65.0, 80.0), labels=("18-44", "45-64", "65-79", "80+")
        ),
        Attribute("payer", values=("Medicare", "Medicaid", "Commercial", "SelfPay")),
        Attribute("language", values=("English", "Spanish", "Other")),
    ),
    intersections=(),
)
THRESHOLD = 0.3


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 5, n)
    return pd.DataFrame(
        {
            "race": rng.choice(["White", "Black", "Asian", "Hispanic", "Other"], n),
            "sex": rng.choice(["female", "male"], n),
            "age_band": rng.uniform(18, 95, n),
            "payer": rng.choice(["Medicare", "Medicaid", "Commercial", "SelfPay"], n),
            "language": rng.choice(["English", "Spanish", "Other"], n),
            "score": scores,
            "label": (rng.random(n) < scores).astype(int),
        }
    )


def fairlearn_all(frame: pd.DataFrame) -> list[pd.DataFrame]:
    decisions = (frame["score"] >= THRESHOLD).astype(int)
    on_decisions = {
        "n": count,
        "selectionRate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "fnr": false_negative_rate,
        "tnr": true_negative_rate,
        "ppv": partial(precision_score, zero_division=0),
        "npv": partial(precision_score, pos_label=0, zero_division=0),
    }
    on_scores = {"brier": brier_score_loss, "auroc": roc_auc_score}
    bands = pd.cut(frame["age_band"], [18, 45, 65, 80, np.inf], right=False).astype(str)
    features = {
        "race": frame["race"],
        "sex": frame["sex"],
        "age_band": bands,
        "payer": frame["payer"],
        "language": frame["language"],
    }
    results = []
    for feature in features.values():
        results.append(
            MetricFrame(
                metrics=on_decisions,
                y_true=frame["label"],
                y_pred=decisions,
                sensitive_features=feature,
            ).by_group
        )
        results.append(
            MetricFrame(
                metrics=on_scores,
                y_true=frame["label"],
                y_pred=frame["score"],
                sensitive_features=feature,
            ).by_group
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40, help="engine runs per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    layout = CellLayout.from_spec(SUBGROUPS)
    frame = rows(args.rows)
    stats = Statistics.empty(layout.cells, THRESHOLD)
    columns = {
        name: frame[name].to_numpy() for name in ("race", "sex", "age_band", "payer", "language")
    }
    stats.update(
        layout.assign(columns, len(frame)), frame["score"].to_numpy(), frame["label"].to_numpy()
    )

    def engine_round() -> float:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            compute_metrics(stats)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def fairlearn_round() -> float:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fairlearn_all(frame)
        return time.perf_counter() - start

    # Rounds alternate the two, so the machine's drift hits both alike.
    rounds = interleave({"engine": engine_round, "fairlearn": fairlearn_round}, args.rounds)
    engine, baseline = statistics.median(rounds["engine"]), statistics.median(rounds["fairlearn"])
    print(f"{len(layout.cells)} cells, window of {args.rows} rows, {args.rounds} rounds")
    print(f"{'method':<58}{'median ms':>12}")
    print(
        f"{'engine compute_metrics (12 metrics + intervals, all cells)':<58}{engine * 1e3:>12.3f}"
    )
    print(f"{'fairlearn MetricFrame (10 metrics, no intervals)':<58}{baseline * 1e3:>12.1f}")
    met = engine <= 1e-3 and baseline / engine >= 1000
    print(
        f"engine is {baseline / engine:,.0f}x faster; goals: <= 1 ms "
        f"({'met' if engine <= 1e-3 else 'not met'}), >= 1000x "
        f"({'met' if baseline / engine >= 1000 else 'not met'})"
    )
    record(
        Result(
            benchmark="engine_metrics",
            measure=f"every metric of {len(layout.cells)} cells, {args.rows} rows",
            unit="ms",
            value=Spread.of([t * 1e3 for t in rounds["engine"]]),
            baseline_name="fairlearn MetricFrame",
            baseline=Spread.of([t * 1e3 for t in rounds["fairlearn"]]),
            goal="<= 1 ms and ratio <= 0.001",
            met=met,
        )
    )


if __name__ == "__main__":
    main()
