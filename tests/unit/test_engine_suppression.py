"""Nothing from which a count of 1 to 10 could be recovered leaves the pod."""

from __future__ import annotations

from typing import Any

import numpy as np
from equiguard.engine.metrics import COUNTS, compute_metrics, metrics_report
from equiguard.engine.slo import SloState, evaluate_slo
from equiguard.engine.spec import Attribute, Intersection, Slo, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import _BLOCK_SUMS, suppress_small_cells
from hypothesis import given, settings
from hypothesis import strategies as st

SUBGROUPS = Subgroups(
    attributes=(
        Attribute("race", values=("White", "Black", "Asian")),
        Attribute("sex", values=("female", "male")),
    ),
    intersections=(
        Intersection(
            "race_x_sex",
            ("race", "sex"),
            (
                "White/female",
                "White/male",
                "Black/female",
                "Black/male",
                "Asian/female",
                "Asian/male",
            ),
        ),
    ),
)
LAYOUT = CellLayout.from_spec(SUBGROUPS)


def report_of(
    races: list[str | None], sexes: list[str | None], scores: list[float], labels: list[int]
) -> dict[str, Any]:
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    stats.update(
        LAYOUT.assign({"race": races, "sex": sexes}, len(races)),
        np.array(scores),
        np.array(labels, dtype=np.int64),
    )
    return {"metrics": metrics_report(compute_metrics(stats))}


POPULATION = st.lists(
    st.tuples(
        st.sampled_from(["White", "White", "Black", "Asian", None]),
        st.sampled_from(["female", "male", None]),
        st.sampled_from([0.1, 0.6, 0.9]),
        st.integers(0, 1),
    ),
    min_size=0,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(POPULATION)
def test_no_small_count_is_shown_or_recoverable_by_subtraction(population: list) -> None:
    original = (
        report_of(*map(list, zip(*population, strict=True)))
        if population
        else report_of([], [], [], [])
    )
    safe = suppress_small_cells(original, LAYOUT)["metrics"]
    for dimension, groups in safe.items():
        for group, block in groups.items():
            before = original["metrics"][dimension][group]
            for name in COUNTS:
                shown = block[name]
                assert shown is None or not 1 <= shown <= 10
                assert shown is None or shown == before[name]  # never altered
                assert (shown is None) == (name in block["suppressed"])
            for total, left, right in _BLOCK_SUMS:
                hidden = [block[k] is None for k in (total, left, right)]
                assert sum(hidden) != 1, (dimension, group, total)
            for metric in ("tpr", "fpr", "ppv", "selectionRate"):
                if block[metric] is None and before[metric] is not None:
                    assert metric in block["suppressed"]
                    assert block["intervals"][metric] is None
    for dimension in ("race", "sex", "race_x_sex"):
        for name in COUNTS:
            terms = [safe[dimension][g][name] for g in safe[dimension]]
            terms.append(safe["overall"]["all"][name])
            assert sum(t is None for t in terms) != 1, (dimension, name)


def test_rates_of_a_large_group_with_a_small_complement_are_hidden() -> None:
    # 300 White positives of which 3 are missed: tpr 0.99 with n shown would reveal fn = 3.
    races = ["White"] * 320 + ["Black"] * 300
    scores = [0.9] * 297 + [0.1] * 3 + [0.1] * 20 + [0.9] * 150 + [0.1] * 150
    labels = [1] * 300 + [0] * 20 + [1] * 300
    block = suppress_small_cells(report_of(races, ["female"] * 620, scores, labels), LAYOUT)[
        "metrics"
    ]["race"]["White"]
    assert block["fn"] is None and block["tpr"] is None and block["fnr"] is None
    assert block["intervals"]["tpr"] is None
    assert block["n"] == 320  # the group itself is large


def test_verdict_evidence_hides_what_the_metrics_hide() -> None:
    # Asian has 4 of 12 positives detected: its tp is small, so Black's tp (the
    # smallest other) is hidden too, or Asian's could be solved from overall.
    slo = Slo("tpr-gap", "tpr", "race", "maxGap", None, 0.1, 86400.0, 11, 0.95, 1, "Alert")
    races = ["White"] * 400 + ["Black"] * 400 + ["Asian"] * 12
    scores = [0.9] * 380 + [0.1] * 20 + [0.9] * 200 + [0.1] * 200 + [0.9] * 4 + [0.1] * 8
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    stats.update(
        LAYOUT.assign({"race": races}, len(races)),
        np.array(scores),
        np.ones(len(races), dtype=np.int64),
    )
    verdict, _ = evaluate_slo(slo, stats, SloState(), 0.0, plan=None)
    report = {
        "metrics": metrics_report(compute_metrics(stats)),
        "slos": {"tpr-gap": verdict.to_dict()},
    }
    safe = suppress_small_cells(report, LAYOUT)
    assert safe["metrics"]["race"]["Asian"]["tpr"] is None
    assert safe["metrics"]["race"]["Black"]["tpr"] is None
    assert safe["metrics"]["race"]["White"]["tpr"] == 0.95
    entry = safe["slos"]["tpr-gap"]
    assert entry["verdict"] == "Violated" and entry["evidence"]["group"] == "Black"
    assert entry["evidence"]["estimate"] is None and entry["evidence"]["groupValue"] is None
    assert entry["evidence"]["referenceValue"] == 0.95
    assert "0.5" not in entry["message"] and "hidden" in entry["message"]


def test_evidence_alone_hides_a_small_group() -> None:
    small = {
        "metric": "tpr",
        "attribute": "race",
        "group": "Asian",
        "reference": "White",
        "n": 12,
        "groupValue": 4 / 12,
        "referenceN": 400,
        "referenceValue": 0.95,
        "estimate": 0.6,
        "interval": [0.3, 0.8],
    }
    entry = {
        "verdict": "Violated",
        "reason": "ThresholdExceeded",
        "message": "tpr 0.333 of 12",
        "evidence": small,
    }
    alone = suppress_small_cells({"slos": {"s": entry}}, LAYOUT)["slos"]["s"]
    assert alone["evidence"]["n"] is None and alone["evidence"]["groupValue"] is None
    assert alone["evidence"]["estimate"] is None and alone["evidence"]["referenceN"] == 400
    assert "12" not in alone["message"]
    assert small["n"] == 12  # the input is not modified
