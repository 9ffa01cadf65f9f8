"""The operator keeps the early warning's reference while the pods still hold it."""

from __future__ import annotations

import numpy as np
from equiguard.engine.stats import Statistics
from equiguard.operator.references import ReferenceKeeper

CELLS = (("overall", "all"), ("race", "White"), ("race", "Black"))
MODEL = ("clinical", "readmission-risk")
DAY = 86400.0


def _labelled(n: int) -> Statistics:
    stats = Statistics.empty(CELLS, 0.3)
    rows = np.tile(np.array([[0, 1]]), (n, 1))
    stats.update(rows, np.linspace(0.05, 0.95, n), np.arange(n) % 2)
    return stats


def test_an_answer_with_outcomes_is_kept_and_used_once_the_pods_hold_none() -> None:
    keeper = ReferenceKeeper()
    served = _labelled(40)
    assert keeper.read(MODEL, "v1", DAY, served) is served
    empty = Statistics.empty(CELLS, 0.3)
    assert keeper.read(MODEL, "v1", DAY, empty) is served  # v2's pods hold nothing of v1


def test_a_kept_reference_serves_only_its_own_revision_and_window() -> None:
    keeper = ReferenceKeeper()
    keeper.read(MODEL, "v1", DAY, _labelled(40))
    empty = Statistics.empty(CELLS, 0.3)
    assert keeper.read(MODEL, "v2", DAY, empty) is empty
    assert keeper.read(MODEL, "v1", 7 * DAY, empty) is empty
    assert keeper.read(("other", "readmission-risk"), "v1", DAY, empty) is empty


def test_a_fresher_answer_replaces_the_kept_one_and_a_forgotten_model_has_none() -> None:
    keeper = ReferenceKeeper()
    keeper.read(MODEL, "v1", DAY, _labelled(40))
    fresher = _labelled(60)
    assert keeper.read(MODEL, "v1", DAY, fresher) is fresher
    keeper.forget(MODEL)
    empty = Statistics.empty(CELLS, 0.3)
    assert keeper.read(MODEL, "v1", DAY, empty) is empty
