"""The report links each finished recalibration to the change record `equiguard pccp`
writes beside it, by the one name both take from contracts.names."""

from __future__ import annotations

from datetime import timedelta

from equiguard.contracts.model import read_model
from equiguard.contracts.names import change_record_file
from equiguard.contracts.records import DecisionRecord, build_decision
from equiguard.report.material import read_input
from equiguard.report.render import render_report
from helpers.report_story import T0, story


def test_a_published_recalibration_links_its_change_record() -> None:
    history = story()
    job = "readmission-risk-recal-3f2a9c1d7e"
    published = DecisionRecord(
        decision="RecalibrationPublished", reason="AwaitingApproval",
        message="candidate published", identity=("published",), job=job,
        revision="readmission:v2", target_revision="readmission:v2-recal-0a1b2c3d4e",
    )  # fmt: skip
    decisions = [
        *history.decisions,
        build_decision(read_model(history.model), published, T0 + timedelta(hours=51)),
    ]
    rendered = render_report(read_input(history.model, decisions, history.end))
    name = change_record_file("readmission-risk", job)
    assert name == f"readmission-risk-change-{job}"
    assert f"href='{name}.md'" in rendered.html
    # The Recalibrate record that started the Job has no record of its own to link.
    assert rendered.html.count("class='change-record'") == 1
