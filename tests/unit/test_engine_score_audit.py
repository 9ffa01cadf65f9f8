"""`equiguard audit` on records whose outcomes are missing: what the scores alone say.

Selection rates equal fairlearn's on the same records; the estimates and
shift signals equal the engine's own (`estimation`, `shift`) on the same
statistics; counts from 1 to 10 never follow from the output.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from equiguard.engine.audit import read_model
from equiguard.engine.estimation import UNAVAILABLE, estimate_rates
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import detect_shifts, shift_alpha
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import is_small
from fairlearn.metrics import MetricFrame, selection_rate
from test_engine_audit import FIELDS, MANIFEST, run, write_records

MODEL = read_model(str(MANIFEST))
LAYOUT = CellLayout.from_spec(MODEL.subgroups)


def rewrite(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def unlabelled(path: Path, n: int, seed: int, keep_every: int = 0) -> list[dict[str, object]]:
    """Records whose labels are blank (but every `keep_every`-th, when given)."""
    rows = write_records(path, n=n, seed=seed)
    for i, row in enumerate(rows):
        if not keep_every or i % keep_every:
            row["label"] = ""
    rewrite(path, rows)
    return rows


def audit(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = run([*args, "--model", str(MANIFEST), "--format", "json"], capsys)
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


def columns(rows: list[dict[str, object]]) -> dict[str, list[object]]:
    return {a.name: [row[a.name] for row in rows] for a in MODEL.subgroups.attributes}


def test_records_without_outcomes_get_each_groups_selection_rate_as_fairlearn_computes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scores.csv"
    rows = unlabelled(path, 3000, seed=11)
    report = audit(capsys, str(path), "--show-small-cells")
    scores = report["scores"]
    assert scores["rows"] == 3000 and scores["withOutcome"] == 0
    assert "estimates" not in scores  # nothing to estimate against without --reference
    flagged = np.array([float(r["score"]) >= MODEL.threshold for r in rows], dtype=int)
    frame = MetricFrame(
        metrics=selection_rate,
        y_true=flagged,
        y_pred=flagged,
        sensitive_features=[r["race"] for r in rows],
    )
    for group, rate in frame.by_group.items():
        assert scores["selection"]["race"][group]["selectionRate"] == pytest.approx(rate)
    assert report["metrics"]["overall"]["all"]["n"] == 0
    assert {entry["verdict"] for entry in report["slos"].values()} == {"Inconclusive"}


def test_estimates_and_shifts_against_a_reference_equal_the_engines_on_the_same_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current_path, reference_path = tmp_path / "now.csv", tmp_path / "reference.csv"
    rows = unlabelled(current_path, 3000, seed=21, keep_every=4)
    reference_rows = write_records(reference_path, n=6000, seed=22)
    report = audit(capsys, str(current_path), "--reference", str(reference_path))
    scores = report["scores"]

    cells = LAYOUT.assign(columns(rows), len(rows))
    current = ScoreStatistics.empty(LAYOUT.cells, MODEL.threshold)
    current.update(cells, np.array([float(r["score"]) for r in rows]))
    current.record_outcomes(cells[[r["label"] != "" for r in rows]])
    reference = Statistics.empty(LAYOUT.cells, MODEL.threshold)
    reference.update(
        LAYOUT.assign(columns(reference_rows), len(reference_rows)),
        np.array([float(r["score"]) for r in reference_rows]),
        np.array([int(str(r["label"])) for r in reference_rows]),
    )
    assert scores["withOutcome"] == int(current.labelled[0]) == 750
    seen_available = seen_unavailable = False
    for estimate in estimate_rates(current, reference, confidence=0.95, min_outcomes=50):
        entry = scores["estimates"][estimate.dimension][estimate.group]
        if entry.get("suppressed"):
            continue
        if estimate.available:
            seen_available = True
            for metric in ("tpr", "fpr", "ppv"):
                rate = estimate.rates[metric]
                assert entry[metric]["value"] == pytest.approx(rate.value)
                assert entry[metric]["interval"] == pytest.approx([rate.lower, rate.upper])
        else:
            seen_unavailable = True
            assert entry["status"] == UNAVAILABLE and entry["reason"] == estimate.reason
    assert seen_available and seen_unavailable
    # The example manifest's earlyWarning keeps the default false-alarm rate, 0.01.
    alpha = shift_alpha(0.01, len(LAYOUT.cells), 0.0, plan=None)
    assert scores["shiftAlpha"] == pytest.approx(alpha)
    expected = detect_shifts(current, ScoreStatistics.of_labelled(reference), alpha, plan=None)
    assert [(s["signal"], s["dimension"], s["group"], s["shifted"]) for s in scores["shifts"]] == [
        (s.signal, s.dimension, s.group, s.shifted) for s in expected
    ]
    # Both files come from one generator: their flag rates do not shift.
    assert not any(s["shifted"] for s in scores["shifts"] if s["signal"] == "flagRate")


def test_the_labelled_part_is_audited_as_the_labelled_records_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mixed, labelled = tmp_path / "mixed.csv", tmp_path / "labelled.csv"
    rows = unlabelled(mixed, 2000, seed=31, keep_every=2)
    rewrite(labelled, [r for r in rows if r["label"] != ""])
    both = audit(capsys, str(mixed), "--show-small-cells")
    alone = audit(capsys, str(labelled), "--show-small-cells")
    assert both["metrics"] == alone["metrics"]
    assert both["slos"] == alone["slos"]
    assert "scores" not in alone  # records that all have outcomes: the audit as before


def test_no_count_from_1_to_10_follows_from_the_scores_or_the_labelled_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current_path, reference_path = tmp_path / "now.csv", tmp_path / "reference.csv"
    unlabelled(current_path, 400, seed=41, keep_every=3)
    write_records(reference_path, n=800, seed=42)
    report = audit(capsys, str(current_path), "--reference", str(reference_path))
    selection, labelled = report["scores"]["selection"], report["metrics"]
    hidden = 0
    for dimension, groups in selection.items():
        for group, block in groups.items():
            if block["n"] is None:
                hidden += 1
                assert report["scores"]["estimates"][dimension][group] == {"suppressed": True}
                continue
            shown = [block["n"]]
            if block["flagged"] is not None:
                shown += [block["flagged"], block["n"] - block["flagged"]]
            labelled_n = labelled[dimension][group]["n"]
            if labelled_n is not None:
                shown.append(block["n"] - labelled_n)  # the records without an outcome
            assert not any(is_small(count) for count in shown), (dimension, group)
    assert hidden > 0  # 400 records leave some groups small
    for signal in report["scores"]["shifts"]:
        if signal["current"] is not None and signal["signal"] == "flagRate":
            n = selection[signal["dimension"]][signal["group"]]["n"]
            count = round(signal["current"] * n)
            assert not is_small(count) and not is_small(n - count)


def test_the_table_shows_the_scores_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current_path, reference_path = tmp_path / "now.csv", tmp_path / "reference.csv"
    unlabelled(current_path, 2000, seed=51)
    write_records(reference_path, n=4000, seed=52)
    code, out, _ = run(
        [str(current_path), "--model", str(MANIFEST), "--reference", str(reference_path)], capsys
    )
    assert code == 0
    assert "Scores of every record (2000 records, 0 with an outcome)" in out
    assert UNAVAILABLE in out and "Shift signals against the reference" in out


def test_a_reference_record_without_its_outcome_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current_path, reference_path = tmp_path / "now.csv", tmp_path / "reference.csv"
    unlabelled(current_path, 50, seed=61)
    unlabelled(reference_path, 50, seed=62, keep_every=2)
    code, out, err = run(
        [str(current_path), "--model", str(MANIFEST), "--reference", str(reference_path)], capsys
    )
    assert code == 2 and out == ""
    assert "--reference:" in err and 'row 2, field "label": is missing' in err
