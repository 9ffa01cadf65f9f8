"""`equiguard status` and `equiguard decisions`: what people read from the status and records."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

from equiguard.contracts import records
from equiguard.operator import decisions, status
from equiguard.operator.tables import age, format_table
from helpers.report_story import T0, V1, V2, story


def test_status_shows_each_slo_with_its_verdict_estimate_and_worst_group() -> None:
    history = story()
    table = status.render_table([status.read_line(history.model)], history.end, False)
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["MODEL", "READY", "REVISION", "LAST", "GOOD", "SLOS"]
    assert len(lines) == 4  # a heading and one line per SLO
    first = lines[1]
    assert first.startswith("readmission-risk")
    assert f"{V1} (spec {V2})" in first
    assert "tpr-gap-race" in first and "Met" in first
    assert "0.0450 (0.0000 to 0.0910)" in first and "Asian vs Hispanic" in first
    assert "Recalibrate readmission:v1" in first
    payer = lines[2]
    assert payer.lstrip().startswith("calibration-payer") and "Violated" in payer
    assert "SelfPay" in payer and "2h" in payer  # violated since two hours before the end


def test_status_never_shows_an_slo_not_yet_judged_as_met() -> None:
    history = story()
    model = copy.deepcopy(history.model)
    model["status"]["slos"] = model["status"]["slos"][:1]
    line = status.read_line(model)
    assert [slo.verdict for slo in line.slos] == ["Met", "", ""]
    table = status.render_table([line], history.end, False)
    payer = next(row for row in table.splitlines() if "calibration-payer" in row)
    assert payer.split()[1] == "-"


def test_status_lists_namespaces_with_all_namespaces_and_says_when_there_is_nothing() -> None:
    history = story(namespace="ward-7")
    table = status.render_table([status.read_line(history.model)], history.end, True)
    assert table.splitlines()[0].startswith("NAMESPACE")
    assert table.splitlines()[1].startswith("ward-7")
    assert status.render_table([], history.end, True) == "No ClinicalModels found."


def test_status_shows_the_early_warning_and_the_precision_of_warnings_under_the_slos() -> None:
    history = story()
    model = copy.deepcopy(history.model)
    model["status"]["earlyWarning"] = {
        "state": "Warning",
        "since": model["status"]["slos"][0]["since"],
        "firing": ["flagRate", "estimates"],
        "holdingRollout": True,
        "warnings": {"raised": 3, "decided": 2, "borneOut": 1, "precision": "0.5000"},
    }
    table = status.render_table([status.read_line(model)], history.end, False)
    row = table.splitlines()[-1]
    assert row.lstrip().startswith("early warning")
    assert "Warning (holding rollout)" in row and "1 of 2 borne out" in row
    assert "flagRate, estimates" in row
    del model["status"]["earlyWarning"]
    assert "early warning" not in status.render_table([status.read_line(model)], history.end, False)


def test_status_json_carries_the_same_lines() -> None:
    history = story()
    data = json.loads(status.render_json([status.read_line(history.model)]))
    assert data["models"][0]["slos"][1]["verdict"] == "Violated"
    assert data["models"][0]["last_good"] == V1


def test_decisions_are_listed_newest_first_with_their_evidence() -> None:
    history = story()
    other = copy.deepcopy(history.decisions[0])
    other["spec"]["model"] = "another-model"
    stored = [records.read(body) for body in [*history.decisions, other]]
    listed = decisions.of_model(stored, "readmission-risk")
    assert len(listed) == len(history.decisions)
    times = [r.time for r in listed]
    assert times == sorted(times, reverse=True)
    table = decisions.render_table(listed, history.end)
    rows = table.splitlines()
    assert rows[0].split() == [
        "AGE",
        "DECISION",
        "SLO",
        "VERDICT",
        "REVISION",
        "EVIDENCE",
        "MESSAGE",
    ]
    rollback = next(row for row in rows if row.split()[1] == "Rollback")
    assert f"{V2} -> {V1}" in rollback
    assert "tpr 0.3700 (0.2200 to 0.5000) Black vs White" in rollback
    changed = next(row for row in rows if "Inconclusive -> Violated" in row)
    assert changed.split()[0] == "23h"


def test_decisions_json_holds_each_record_spec_with_its_name() -> None:
    history = story()
    listed = decisions.of_model([records.read(b) for b in history.decisions], "readmission-risk")
    by_name = {body["metadata"]["name"]: body for body in history.decisions}
    bodies = [by_name[record.name] for record in listed[:2]]
    data = json.loads(decisions.render_json(bodies))
    assert [d["name"] for d in data["decisions"]] == [b["metadata"]["name"] for b in bodies]
    assert data["decisions"][0]["decision"] == "Recalibrate"


def test_ages_read_like_kubectl() -> None:
    assert [age(T0 - timedelta(seconds=s), T0) for s in (5, 90, 7200, 3 * 86400)] == [
        "5s",
        "1m",
        "2h",
        "3d",
    ]
    assert age(None, T0) == "-"


def test_table_columns_line_up_and_the_last_is_not_padded() -> None:
    table = format_table(["A", "LONGER"], [["wide cell", "x"], ["b", "y"]])
    assert table.splitlines() == ["A           LONGER", "wide cell   x", "b           y"]
