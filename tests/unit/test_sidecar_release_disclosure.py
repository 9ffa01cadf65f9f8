"""Held-out attacks over time: successive answers of the open outputs let no count
of 1 to 10 be derived, from one release or from comparing releases.

A new revision starts with empty windows, and in its first day nothing leaves
its 1d and 7d windows: each answer holds the one before plus the outcomes
joined in between. Random populations (skewed group shares, missing values)
are predicted over the first day, each outcome joining 1 to 30 hours later;
a reader asks every hour. The attacker (tests/helpers/attack.py) takes every
answer of a window, in order, as nested tables (each later answer holds the
earlier one, as a longer window holds a shorter one) and bounds every count
and every difference of consecutive answers by linear programming.

The design before releases is attacked too: each answer suppressed on its
own (with the other window of its instant), as when an answer was remade
whenever an outcome joined.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.release import Release
from equiguard.engine.stats import Statistics
from equiguard.sidecar.publication import publish
from helpers.attack import attack
from test_engine_disclosure import INTERSECTIONS, LAYOUT, population

HOUR = 3600.0
WINDOWS = (24 * HOUR, 7 * 24 * HOUR)
ASKED = (8 * HOUR, 16 * HOUR, 24 * HOUR)  # the answers compared, over day one
SEEDS = range(500, 504)
EARLIER_SEEDS = range(500, 502)  # enough to show that answers made alone leak


def window_statistics(rows: dict[str, np.ndarray], now: float) -> Statistics:
    """What a window of the new revision holds at `now`: every joined outcome so far
    (in its first day nothing has left either window, so both hold the same)."""
    keep = rows["joined"] <= now
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    columns = {k: rows[k][keep] for k in ("race", "sex", "payer")}
    stats.update(LAYOUT.assign(columns, int(keep.sum())), rows["score"][keep], rows["label"][keep])
    return stats


def timed_population(seed: int) -> dict[str, np.ndarray]:
    rows = population(seed)
    rng = np.random.default_rng(seed + 7)
    n = len(rows["label"])
    predicted = rng.random(n) * 24 * HOUR
    rows["joined"] = predicted + rng.uniform(1, 30, n) * HOUR
    return rows


def derivable(seed: int) -> dict[str, list[str]]:
    rows = timed_population(seed)
    truths: list[list[dict[str, Any]]] = []
    released: list[list[dict[str, Any]]] = []
    alone: list[list[dict[str, Any]]] = []
    previous: Release | None = None
    for number, now in enumerate(ASKED):
        stats = window_statistics(rows, now)
        totals = [stats, stats]
        truths.append([metrics_report(compute_metrics(t)) for t in totals])
        grown = (True, True)  # day one: nothing has left either window
        previous, publication = publish(totals, WINDOWS, LAYOUT, number, previous, grown)
        released.append(list(publication.metrics))
        if seed in EARLIER_SEEDS:
            alone.append(list(publish(totals, WINDOWS, LAYOUT, number)[1].metrics))
    # On day one both windows hold the same outcomes: attacking one attacks both.
    truth = [t[0] for t in truths]
    found = {"releases": attack([r[0] for r in released], INTERSECTIONS, truth)}
    if seed in EARLIER_SEEDS:
        found["answers alone"] = attack([a[0] for a in alone], INTERSECTIONS, truth)
    return found


@pytest.fixture(scope="module")
def results() -> dict[int, dict[str, list[str]]]:
    return {seed: derivable(seed) for seed in SEEDS}


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_successive_releases_disclose_no_small_count(
    results: dict[int, dict[str, list[str]]], seed: int
) -> None:
    assert results[seed]["releases"] == []


@pytest.mark.slow
def test_answers_suppressed_one_at_a_time_disclose_small_counts(
    results: dict[int, dict[str, list[str]]],
) -> None:
    # The attack is not vacuous: comparing answers made alone gives counts away.
    assert sum(len(results[seed]["answers alone"]) for seed in EARLIER_SEEDS) > 0
