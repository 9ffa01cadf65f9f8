"""Held-out attacks: nothing published lets a count from 1 to 10 be derived.

An attacker (tests/helpers/attack.py, written apart from the engine) bounds
every count by linear programming over every identity a reader knows, on
many randomly generated populations, one window or two nested windows.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.spec import Attribute, Intersection, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import is_small, suppress_small_cells, suppress_spans
from helpers.attack import attack

RACES = ("White", "Black", "Asian", "Other")
SEXES = ("female", "male")
PAYERS = ("Medicare", "Medicaid", "Commercial")
SUBGROUPS = Subgroups(
    attributes=(
        Attribute("race", values=RACES),
        Attribute("sex", values=SEXES),
        Attribute("payer", values=PAYERS),
    ),
    intersections=(
        Intersection(
            "race_x_sex", ("race", "sex"), tuple(f"{r}/{s}" for r in RACES for s in SEXES)
        ),
    ),
)
LAYOUT = CellLayout.from_spec(SUBGROUPS)
INTERSECTIONS = {"race_x_sex": ("race", "sex")}


def population(seed: int) -> dict[str, np.ndarray]:
    """Rows with skewed group shares, some missing values, random labels and scores."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(200, 2500))

    def column(values: tuple[str, ...], missing: float) -> np.ndarray:
        shares = rng.dirichlet(np.full(len(values), 0.6))
        picked = rng.choice(np.array(values, dtype=object), n, p=shares)
        picked[rng.random(n) < missing] = None
        return picked

    return {
        "race": column(RACES, rng.uniform(0, 0.04)),
        "sex": column(SEXES, rng.choice([0.0, rng.uniform(0, 0.02)])),
        "payer": column(PAYERS, rng.uniform(0, 0.03)),
        "label": (rng.random(n) < rng.uniform(0.05, 0.4)).astype(np.int64),
        "score": rng.random(n),
        "recent": rng.random(n) < rng.uniform(0.1, 0.6),
    }


def metrics(rows: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, Any]:
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    columns = {k: rows[k][keep] for k in ("race", "sex", "payer")}
    stats.update(LAYOUT.assign(columns, int(keep.sum())), rows["score"][keep], rows["label"][keep])
    return metrics_report(compute_metrics(stats))


@pytest.mark.parametrize("seed", range(30))
def test_one_window_discloses_no_small_count(seed: int) -> None:
    rows = population(seed)
    truth = metrics(rows, np.ones(len(rows["label"]), dtype=bool))
    published = suppress_small_cells({"metrics": truth}, LAYOUT)["metrics"]
    assert attack([published], INTERSECTIONS, [truth]) == []


@pytest.mark.parametrize("seed", range(100, 112))
def test_two_nested_windows_disclose_no_small_count_nor_their_difference(seed: int) -> None:
    rows = population(seed)
    short = metrics(rows, rows["recent"])
    long = metrics(rows, np.ones(len(rows["label"]), dtype=bool))
    published = suppress_spans([{"metrics": short}, {"metrics": long}], LAYOUT)
    assert attack([p["metrics"] for p in published], INTERSECTIONS, [short, long]) == []


def test_an_intersections_unknown_cell_does_not_open_its_margins() -> None:
    # Race Other = 40, Other/male = 35 and sex unknown = 0 would give Other/female = 5.
    races = ["Other"] * 40 + ["White"] * 300 + ["Black"] * 120 + [None] * 30
    sexes = ["male"] * 35 + ["female"] * 5 + ["female"] * 150 + ["male"] * 150 + ["male"] * 150
    n = len(races)
    rows = {
        "race": np.array(races, dtype=object),
        "sex": np.array(sexes, dtype=object),
        "payer": np.array(["Medicare"] * n, dtype=object),
        "label": np.arange(n) % 3 == 0,
        "score": (np.arange(n) % 7) / 7,
    }
    rows["label"] = rows["label"].astype(np.int64)
    truth = metrics(rows, np.ones(n, dtype=bool))
    assert truth["race_x_sex"]["Other/female"]["n"] == 5
    published = suppress_small_cells({"metrics": truth}, LAYOUT)["metrics"]
    assert published["race_x_sex"]["Other/female"]["n"] is None
    assert attack([published], INTERSECTIONS, [truth]) == []


def test_the_attacker_finds_what_primary_suppression_alone_leaves() -> None:
    # The attack is not vacuous: hiding only the counts from 1 to 10 discloses them.
    rows = population(3)
    truth = metrics(rows, np.ones(len(rows["label"]), dtype=bool))
    naive = copy.deepcopy(truth)
    for groups in naive.values():
        for block in groups.values():
            for name, value in list(block.items()):
                if isinstance(value, int) and is_small(value):
                    block[name] = None
    assert attack([naive], INTERSECTIONS, [truth])
