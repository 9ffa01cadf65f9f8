"""The equity report's content and its two renderings, on a recorded model history.

The history (tests/helpers/report_story.py) is built with the operator's own
record and status writers; these tests check what a review panel relies on:
no small count, every decision and revision present, the charts drawn from
the recorded evidence, and HTML and JSON saying the same thing.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from equiguard.contracts.approval import approval_patch, build_approval
from equiguard.contracts.records import GroupPoint
from equiguard.engine import audit, scored_records
from equiguard.engine.spec import parse_model
from equiguard.report import attribute_sets, development, eu_art13
from equiguard.report.content import build_content
from equiguard.report.material import read_input
from equiguard.report.render import render_report
from equiguard.report.suppress import check_groups
from helpers.report_story import RACE_POSITIVES, V1, V2, Story, story, without_status

REPO = Path(__file__).resolve().parents[2]
SCORED = REPO / "examples/readmission/scored-records.csv"


@pytest.fixture
def history() -> Story:
    return story()


def content_of(history: Story, **changes: Any) -> dict[str, Any]:
    return build_content(read_input(history.model, history.decisions, history.end, **changes))


def counts(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from counts(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from counts(item, key)


def evidence_groups(history: Story, record_prefix: str) -> list[dict[str, Any]]:
    record = next(d for d in history.decisions if d["metadata"]["name"].startswith(record_prefix))
    groups: list[dict[str, Any]] = record["spec"]["evidence"]["groups"]
    return groups


# -- small cells ----------------------------------------------------------------


def test_no_patient_count_from_1_to_10_appears_in_the_json(history: Story) -> None:
    development_ = development.assess(history.model, str(SCORED))
    content = content_of(history, development=development_)
    patient_counts = [v for k, v in counts(content) if k in ("n", "rows")]
    assert patient_counts, "the report shows sample sizes"
    assert all(v is None or v == 0 or v > 10 for v in patient_counts), patient_counts


def test_groups_the_operator_withheld_are_hidden_at_every_evaluation(history: Story) -> None:
    content = content_of(history)
    race = next(s for s in content["slos"] if s["attribute"] == "race")
    for evaluation in race["evaluations"]:
        for group in evaluation["groups"]:
            if group["group"] in ("Other", "unknown"):
                assert group == {"group": group["group"], "estimate": None, "lower": None,
                                 "upper": None, "n": None, "hidden": True}


def test_a_lone_hidden_group_hides_the_smallest_other_group_so_it_cannot_be_solved_for(
    history: Story,
) -> None:
    # Only one race group withheld: with the others' counts and any total it could be recovered.
    groups = evidence_groups(history, "readmission-risk-rollback")
    groups[:] = [g for g in groups if g["group"] != "unknown"]
    content = content_of(history)
    rollback = next(d for d in content["decisions"] if d["decision"] == "Rollback")
    evaluation = next(e for s in content["slos"] for e in s["evaluations"]
                      if e["time"] == rollback["time"])
    hidden = {g["group"] for g in evaluation["groups"] if g["hidden"]}
    smallest_shown = min((g for g in groups if not g["suppressed"]), key=lambda g: g["n"])
    assert hidden == {"Other", smallest_shown["group"]}


def test_a_rate_whose_numerator_is_from_1_to_10_is_hidden_with_its_count() -> None:
    points = [
        GroupPoint("White", 0.61, 0.56, 0.65, 412, False),
        GroupPoint("Black", 0.10, 0.04, 0.21, 50, False),  # 5 patients flagged of 50
        GroupPoint("Asian", 0.96, 0.86, 0.99, 50, False),  # 2 missed of 50
        GroupPoint("Hispanic", 0.63, 0.53, 0.72, 96, False),
    ]
    spec = parse_model(story().model)
    checked = check_groups(points, "tpr", "race", spec.subgroups)
    assert checked.hidden == {"Black", "Asian"}
    assert all(p.n is None and p.estimate is None for p in checked.groups if p.suppressed)


def test_a_value_whose_count_the_source_left_out_is_not_shown() -> None:
    spec = parse_model(story().model)
    points = [GroupPoint("White", 0.61, 0.56, 0.65, 412, False),
              GroupPoint("Black", 0.60, 0.5, 0.7, None, False),
              GroupPoint("Asian", 0.58, 0.5, 0.7, 60, False)]
    checked = check_groups(points, "tpr", "race", spec.subgroups)
    assert "Black" in checked.hidden


def test_a_summary_resting_on_a_newly_hidden_group_is_hidden_with_its_message(
    history: Story,
) -> None:
    # The record shows Black's TPR on 50 positives with 9 found: the numerator is a small cell.
    groups = evidence_groups(history, "readmission-risk-rollback")
    black = next(g for g in groups if g["group"] == "Black")
    black.update(estimate="0.1800", lower="0.0900", upper="0.3100", n=50)
    content = content_of(history)
    rollback = next(d for d in content["decisions"] if d["decision"] == "Rollback")
    evaluation = next(e for s in content["slos"] for e in s["evaluations"]
                      if e["time"] == rollback["time"])
    assert evaluation["estimate"] is None and evaluation["lower"] is None
    assert "hidden because a subgroup count is between 1 and 10" in rollback["message"]
    assert "0.370" not in json.dumps(rollback)


def test_fields_outside_the_records_schema_never_reach_the_report(history: Story) -> None:
    canary = "MRN-4711-0815"
    record = history.decisions[-1]
    record["spec"]["patientId"] = canary
    record["spec"]["evidence"]["requestIds"] = [canary]
    record["spec"]["evidence"]["groups"][0]["patient"] = canary
    history.model["status"]["slos"][0]["examples"] = [canary]
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    assert canary not in rendered.html
    assert canary not in rendered.json


# -- what the report holds ------------------------------------------------------


def test_each_slo_has_its_statement_current_verdict_and_verdict_history(history: Story) -> None:
    content = content_of(history)
    by_name = {s["name"]: s for s in content["slos"]}
    assert list(by_name) == ["tpr-gap-race", "calibration-payer", "selection-rate-floor-adi"]
    race = by_name["tpr-gap-race"]
    assert race["statement"].startswith(
        "The true-positive rate may differ by at most 0.10 between any two race groups")
    assert race["current"]["verdict"] == "Met"
    assert [(h["decision"], h["verdict"]) for h in race["history"]] == [
        ("VerdictChanged", "Met"), ("VerdictChanged", "Inconclusive"),
        ("VerdictChanged", "Violated"), ("Rollback", "Violated"), ("VerdictChanged", "Met"),
    ]
    assert by_name["calibration-payer"]["current"]["verdict"] == "Violated"


def test_evaluations_over_time_come_from_record_evidence_then_the_latest_status(
    history: Story,
) -> None:
    race = next(s for s in content_of(history)["slos"] if s["name"] == "tpr-gap-race")
    sources = [(e["source"], e["verdict"], e["estimate"]) for e in race["evaluations"]]
    # The rollback shares its evaluation with the change to Violated: one point, not two.
    assert sources == [
        ("decision record", "Met", 0.05),
        ("decision record", "Violated", 0.37),
        ("decision record", "Met", 0.04),
        ("status", "Met", 0.045),
    ]
    violated = race["evaluations"][1]
    black = next(g for g in violated["groups"] if g["group"] == "Black")
    assert black == {"group": "Black", "estimate": 0.35, "lower": 0.2804, "upper": 0.4196,
                     "n": RACE_POSITIVES["Black"], "hidden": False}


def test_revision_history_lists_each_revision_with_its_role_and_decisions(
    history: Story,
) -> None:
    content = content_of(history)
    revisions = {r["revision"]: r for r in content["revisions"]}
    assert revisions[V1]["roles"] == ["serving", "last good"]
    assert revisions[V1]["qualifiedAt"] == "2026-03-02T11:00:00Z"
    assert revisions[V2]["roles"] == ["requested by the spec"]
    assert revisions[V2]["quarantinedAt"] == "2026-03-03T13:00:00Z"
    rollback = next(d for d in content["decisions"] if d["decision"] == "Rollback")
    assert rollback["record"] in revisions[V2]["decisions"]
    assert rollback["record"] in revisions[V1]["decisions"]  # the revision rolled back to


def test_every_decision_appears_once_in_time_order_with_the_change_before_its_action(
    history: Story,
) -> None:
    content = content_of(history)
    names = [d["record"] for d in content["decisions"]]
    assert sorted(names) == sorted(d["metadata"]["name"] for d in history.decisions)
    times = [d["time"] for d in content["decisions"]]
    assert times == sorted(times)
    same_moment = [d["decision"] for d in content["decisions"]
                   if d["time"] == "2026-03-03T13:00:00Z"]
    assert same_moment == ["VerdictChanged", "Rollback"]


def test_a_recorded_approval_is_marked_in_the_decision_log(history: Story) -> None:
    approval = copy.deepcopy(history.decisions[-1])
    approval["metadata"]["name"] = "readmission-risk-approval-0001"
    approval["spec"].update(
        decision="Promote", reason="RevisionPromoted", job="",
        message="Revision readmission:v1-recal-3f2a serves after approval.",
        approval={"revision": "readmission:v1-recal-3f2a", "by": "Equity review panel",
                  "reason": "every acceptance criterion held", "time": "2026-03-04T11:30:00Z"})
    history.decisions.append(approval)
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    content = json.loads(rendered.json)
    approvals = [(d["record"], d["approvedBy"]) for d in content["decisions"] if d["approval"]]
    assert approvals == [("readmission-risk-approval-0001", "Equity review panel")]
    assert "1 approvals" in rendered.html
    assert 'class="approval"' in rendered.html
    assert "<b>Approved by Equity review panel</b>" in rendered.html


def test_the_latest_approval_recorded_on_the_model_is_shown(history: Story) -> None:
    approval = build_approval("readmission:v1-recal-3f2a", "Equity review panel",
                              "criteria held for every payer group", history.end)
    history.model["metadata"]["annotations"] = approval_patch(
        "readmission-risk", "clinic", approval)["metadata"]["annotations"]
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    assert json.loads(rendered.json)["model"]["latestApproval"] == {
        "revision": "readmission:v1-recal-3f2a", "by": "Equity review panel",
        "reason": "criteria held for every payer group", "time": "2026-03-04T12:00:00Z"}
    assert ("<b>readmission:v1-recal-3f2a</b> approved by <b>Equity review panel</b>"
            in rendered.html)


def test_records_of_an_earlier_model_of_the_same_name_are_left_out(history: Story) -> None:
    stale = copy.deepcopy(history.decisions[0])
    stale["metadata"]["name"] = "readmission-risk-verdictchanged-old"
    stale["spec"]["modelUID"] = "an-earlier-uid"
    history.decisions.append(stale)
    names = [d["record"] for d in content_of(history)["decisions"]]
    assert "readmission-risk-verdictchanged-old" not in names


def test_a_model_never_evaluated_gets_a_report_that_says_so(history: Story) -> None:
    report = read_input(without_status(history.model), [], history.end)
    rendered = render_report(report)
    content = json.loads(rendered.json)
    assert all(s["current"] is None and s["evaluations"] == [] for s in content["slos"])
    local = next(a for a in content["sourceAttributes"] if "local data" in a["attribute"])
    assert local["value"].startswith("Not evaluated yet")
    assert "No estimate recorded yet for this SLO." in rendered.html


# -- HTI-1 source attributes ----------------------------------------------------


def test_source_attributes_cover_the_fairness_categories_and_name_what_is_missing(
    history: Story,
) -> None:
    content = content_of(history, source_attributes={"fairnessApproach": "Demographics are not "
                                                     "inputs; TPR parity was checked."})
    items = content["sourceAttributes"]
    categories = {i["category"][:3] for i in items}
    assert categories == {"(2)", "(4)", "(5)", "(6)", "(7)", "(8)", "(9)"}
    by_attribute = {i["attribute"]: i for i in items}
    approach = by_attribute["Approach taken to ensure that the intervention's output is fair"]
    assert approach["origin"] == "model owner"
    assert approach["value"].startswith("Demographics are not inputs")
    external = by_attribute["Fairness in data external to the training data's source"]
    assert external["origin"] == "missing"
    assert "`externalFairness`" in external["value"]
    monitoring = by_attribute["Process and frequency by which fairness is monitored over time"]
    assert "every 1m" in monitoring["value"] and "tpr-gap-race: tpr by race" in monitoring["value"]
    local = by_attribute["Fairness of the intervention in local data (last results)"]
    assert "calibration-payer: Violated since 2026-03-04T10:00:00Z" in local["value"]
    corrections = by_attribute[
        "Frequency by which performance is corrected when fairness risks are identified"]
    assert "tpr-gap-race → Rollback" in corrections["value"]
    assert "recorded human approval" in corrections["value"]


@pytest.mark.parametrize("chosen", sorted(attribute_sets.SETS))
def test_every_owner_key_of_the_chosen_set_is_shown_and_no_other(
    history: Story, chosen: str
) -> None:
    provided = {key: f"text for {key}" for key in attribute_sets.OWNER_KEYS}
    content = content_of(history, source_attributes=provided, attribute_set=chosen)
    asked = attribute_sets.SETS[chosen].owner_keys
    values = "\n".join(i["value"] for i in content["sourceAttributes"])
    assert all(f"text for {key}" in values for key in asked)
    assert not any(f"text for {key}" in values for key in set(provided) - set(asked))
    assert content["attributeSet"]["name"] == chosen


@pytest.mark.parametrize("chosen", sorted(attribute_sets.SETS))
def test_each_attribute_names_the_evidence_that_filled_it(history: Story, chosen: str) -> None:
    content = content_of(history, source_attributes={"inputFeatures": "age, prior visits"},
                         attribute_set=chosen)  # fmt: skip
    items = content["sourceAttributes"]
    for item in items:
        if item["origin"] == "missing":
            assert item["evidence"] == "none"
        elif item["origin"] == "model owner":
            assert item["evidence"].startswith("the source-attributes file (")
        else:  # from the cluster: a spec field, the status's evaluation, records
            assert item["evidence"] and "source-attributes" not in item["evidence"]
    # The live results name the evaluation they come from.
    last = next(i for i in items if "last results" in i["attribute"])
    evaluated = content["state"]["lastEvaluationTime"]
    assert last["evidence"] == f"status.slos of the evaluation at {evaluated}"
    assert "calibration-payer: Violated since" in last["value"]


def test_the_eu_set_follows_article_13_and_reads_the_envelope_and_records(
    history: Story,
) -> None:
    content = content_of(history, attribute_set="eu-ai-act-art13")
    items = content["sourceAttributes"]
    assert [i["category"] for i in items] == sorted(
        (i["category"] for i in items), key=eu_art13.CATEGORY_ORDER.index
    )
    by_category = {i["category"]: i for i in items}
    envelope = by_category[eu_art13.CHANGES]
    assert envelope["evidence"] == "spec.changeControl" and "recorded human approval" in envelope[
        "value"]  # fmt: skip
    logs = by_category[eu_art13.LOGS]
    assert f"{len(content['decisions'])} are recorded" in logs["value"]
    risks = by_category[eu_art13.RISKS]
    assert risks["origin"] == "missing" and "`knownRisks`" in risks["value"]


def test_an_unknown_attribute_set_is_refused_with_the_sets_there_are() -> None:
    with pytest.raises(KeyError, match="no attribute set 'hti-5'; the sets are hti-1, "):
        attribute_sets.attribute_set("hti-5")


def test_development_assessment_equals_the_engine_audit_of_the_same_records(
    history: Story,
) -> None:
    spec = parse_model(history.model)
    expected = audit.build_report(spec, scored_records.read_records(str(SCORED), spec), 0.95,
                                  suppress=True)
    content = content_of(history, development=development.assess(history.model, str(SCORED)))
    assessed = content["development"]
    assert assessed["rows"] == expected["records"]["rows"]
    for slo in assessed["slos"]:
        assert slo["verdict"] == expected["slos"][slo["name"]]["verdict"]
        metric = next(s.metric for s in spec.slos if s.name == slo["name"])
        attribute = next(s.attribute for s in spec.slos if s.name == slo["name"])
        for group in slo["groups"]:
            block = expected["metrics"][attribute][group["group"]]
            if group["hidden"]:
                assert block[metric] is None or set(block["suppressed"])
            elif block[metric] is not None:
                assert group["estimate"] == pytest.approx(block[metric], abs=5e-5)
    assert "development" in json.dumps(content["sourceAttributes"])


# -- the renderings -------------------------------------------------------------


def test_html_shows_every_decision_revision_and_slo_of_the_json(history: Story) -> None:
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    content = json.loads(rendered.json)
    for decision in content["decisions"]:
        assert decision["record"] in rendered.html
    for revision in content["revisions"]:
        assert f"<b>{revision['revision']}</b>" in rendered.html
    for slo in content["slos"]:
        assert f'id="slo-{slo["name"]}"' in rendered.html
        for group in next(e for e in reversed(slo["evaluations"]) if e["groups"])["groups"]:
            if not group["hidden"] and group["estimate"] is not None:
                assert f"<td class=\"num\">{group['estimate']:.3f}</td>" in rendered.html


def test_each_slo_has_a_chart_of_its_estimate_and_one_of_its_groups(history: Story) -> None:
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    content = json.loads(rendered.json)
    sections = re.findall(r'<section class="slo" id="slo-([^"]+)">(.*?)</section>',
                          rendered.html, flags=re.S)
    assert [name for name, _ in sections] == [s["name"] for s in content["slos"]]
    for (_, section), slo in zip(sections, content["slos"], strict=True):
        charts = re.findall(r"<svg .*?</svg>", section, flags=re.S)
        assert len(charts) == 2
        points = [e for e in slo["evaluations"] if e["estimate"] is not None]
        assert charts[0].count("<circle") == len(points)
        shown = sum(1 for e in slo["evaluations"] for g in e["groups"]
                    if g["estimate"] is not None)
        assert charts[1].count("<circle") == shown


def test_the_page_loads_nothing_from_elsewhere(history: Story) -> None:
    html = render_report(read_input(history.model, history.decisions, history.end)).html
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert "url(" not in html and "@import" not in html and " src=" not in html
    assert "default-src 'none'" in html
    external = re.findall(r'href="(?!#|mailto:)[^"]*"', html) + re.findall(
        r"href='(?!#|mailto:)[^']*'", html)
    assert external == []


def test_the_report_is_the_same_for_the_same_input(history: Story) -> None:
    later = history.end + timedelta(hours=1)
    first = render_report(read_input(history.model, history.decisions, later))
    second = render_report(read_input(history.model, history.decisions, later))
    assert first == second


def test_a_model_without_an_image_names_the_image_its_revision_was_served_with(
    history: Story,
) -> None:
    # The spec names no image: the operator's --model-image served it, as status records.
    spec_model = history.model["spec"]["model"]
    del spec_model["image"]
    for entry in history.model["status"]["revisions"]:
        if entry["revision"] == spec_model["bento"]:
            entry["image"] = "registry.example.org/model-runtime:0.2.0"
    rendered = render_report(read_input(history.model, history.decisions, history.end))
    assert json.loads(rendered.json)["model"]["image"] == "registry.example.org/model-runtime:0.2.0"
    assert "in <code>registry.example.org/model-runtime:0.2.0</code>" in rendered.html
    unserved = render_report(read_input(without_status(history.model), [], history.end))
    assert json.loads(unserved.json)["model"]["image"] == ""
    assert "in the operator's default model runtime image" in unserved.html
