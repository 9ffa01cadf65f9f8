"""Events per second when updating the engine's statistics from batches.

Baselines in the same run: one raw `np.bincount` over the same flat
(cell, label, bin) indices (the least work any histogram update can do), and
a per-event Python loop doing the engine's update one event at a time.
An event is one labelled prediction of the readmission example: 8 cells
(overall, 6 attributes, race x sex).

    .venv/bin/python bench/engine_update.py [--batch 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics, score_bin
from equiguard.engine.subgroups import CellLayout
from harness import Result, Spread, interleave, record

MANIFEST = Path(__file__).parents[1] / "examples" / "readmission" / "clinicalmodel.yaml"


def events(layout: CellLayout, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {
        "race": rng.choice(["White", "Black", "Asian", "Hispanic", "Other"], n),
        "sex": rng.choice(["female", "male"], n),
        "age_band": rng.uniform(18, 95, n),
        "payer": rng.choice(["Medicare", "Medicaid", "Commercial", "SelfPay"], n),
        "language": rng.choice(["English", "Spanish", "Other"], n),
        "adi_quintile": rng.integers(1, 6, n),
    }
    scores = rng.random(n)
    labels = (rng.random(n) < scores).astype(np.int64)
    return layout.assign(columns, n), scores, labels


def python_loop(
    stats: Statistics, cells: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> None:
    """The same update, one event and one cell at a time."""
    bins, width = stats.score_bins, stats.score_bins + 1
    histogram = stats.histogram.reshape(-1)
    score_sums = stats.score_sums.reshape(-1)
    for row, score, label in zip(cells.tolist(), scores.tolist(), labels.tolist(), strict=True):
        bin_ = min(int(score * bins), bins - 1) + (score >= stats.threshold)
        error = (score - label) ** 2
        for cell in row:
            index = (cell * 2 + label) * width + bin_
            histogram[index] += 1
            score_sums[index] += score
            stats.squared_error_sums[cell] += error
            stats.squared_error_squares[cell] += error * error


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=5, help="updates timed per round")
    parser.add_argument("--loop-events", type=int, default=5_000)
    args = parser.parse_args()

    model = parse_model(yaml.safe_load(MANIFEST.read_text()))
    layout = CellLayout.from_spec(model.subgroups)
    cells, scores, labels = events(layout, args.batch)
    stats = Statistics.empty(layout.cells, model.threshold)
    width = stats.score_bins + 1
    flat = (
        cells * (2 * width) + (labels * width + score_bin(scores, model.threshold, 100))[:, None]
    ).ravel()
    size = len(layout.cells) * 2 * width

    # Rounds alternate engine and baseline, so the machine's drift hits both alike.
    rounds = interleave(
        {
            "engine": lambda: median_seconds(
                lambda: stats.update(cells, scores, labels), args.repeats
            ),
            "raw": lambda: median_seconds(lambda: np.bincount(flat, minlength=size), args.repeats),
        },
        args.rounds,
    )
    engine, raw = statistics.median(rounds["engine"]), statistics.median(rounds["raw"])
    loop_stats = Statistics.empty(layout.cells, model.threshold)
    k = args.loop_events
    loop = (
        median_seconds(lambda: python_loop(loop_stats, cells[:k], scores[:k], labels[:k]), 3)
        * args.batch
        / k
    )

    rate = args.batch / engine
    slowdown = engine / raw
    print(f"batch of {args.batch} events, {cells.shape[1]} cells each, ", end="")
    print(f"{len(layout.cells)} cells in all; median of {args.rounds} interleaved rounds")
    print(f"{'method':<34}{'median ms/batch':>16}{'events/s':>16}{'time vs engine':>17}")
    for name, seconds in (
        ("engine Statistics.update", engine),
        ("raw np.bincount (counts only)", raw),
        ("per-event Python loop", loop),
    ):
        rate_here = args.batch / seconds
        print(f"{name:<34}{seconds * 1e3:>16.2f}{rate_here:>16,.0f}{seconds / engine:>16.2f}x")
    met = rate >= 1e7 and slowdown <= 3.0
    print(
        f"goal >= 10,000,000 events/s and within 3x of raw bincount: "
        f"{'met' if met else 'not met'} ({rate:,.0f}/s, {slowdown:.2f}x)"
    )
    record(
        Result(
            benchmark="engine_update",
            measure=f"Statistics.update, batches of {args.batch}",
            unit="events/s",
            value=Spread.of([args.batch / t for t in rounds["engine"]]),
            baseline_name="raw np.bincount",
            baseline=Spread.of([args.batch / t for t in rounds["raw"]]),
            goal=">= 10M/s and ratio >= 0.33",
            met=met,
        )
    )


if __name__ == "__main__":
    main()
