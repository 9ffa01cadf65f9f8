"""The report's early warnings: estimates beside what the labels later showed.

The story's v2 breaks the TPR gap by race (Black vs White, 0.37 on labels,
rolled back at hour 29). Here a model that watches that SLO on estimates
warned about v2 at hour 27, from its scores alone, and the labelled verdict
at hour 29 bore the warning out. The warning's evidence is built with the
operator's own `warning_result`, its records with `build_decision` and the
tally with the status contract, so their shape is the operator's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from equiguard.contracts.early_warning_status import WarningTally
from equiguard.contracts.model import read_model
from equiguard.contracts.records import DecisionRecord, build_decision, record_name
from equiguard.contracts.status import format_time
from equiguard.engine.early_warning import Assessment, EstimateJudgement, Watched
from equiguard.engine.shift import ShiftSignal
from equiguard.operator.early_warning import Reference, warning_result
from equiguard.report.content import build_content
from equiguard.report.html import render_html
from equiguard.report.material import read_input
from helpers.report_story import T0, V1, V2, Story, story

TPR_SLO = "tpr-gap-race"
RAISED_AT = T0 + timedelta(hours=27)
RESOLVED_AT = T0 + timedelta(hours=29)


def _with_warning(
    history: Story, pair: tuple[str, str] = ("White", "Black")
) -> tuple[Story, dict[str, Any], dict[str, Any]]:
    """The story with an early warning on v2, raised and then borne out by labels."""
    body = history.model
    assert body["spec"]["earlyWarning"]["estimates"] == [{"slo": TPR_SLO}]  # the example's
    model = read_model(body)
    watched = Watched(TPR_SLO, "tpr", "race", "maxGap", 0.10)
    judged = EstimateJudgement(watched, True, True, "", pair, 0.31, 0.17, 0.45, 90)
    shifted = ShiftSignal(
        "flagRate", "race", "Black", True, 0.12, 0.21, (0.08, 0.16), (0.19, 0.23), 240
    )
    result = warning_result(
        model, Assessment((shifted,), (judged,), ()), V2, Reference(V1, "LastGoodRevision", 2.6e6)
    )
    raised = DecisionRecord(
        decision="EarlyWarning",
        reason="EarlyWarningRaised",
        message=result.message,
        identity=(V2, "Clear", format_time(T0)),
        revision=V2,
        early_warning=result.evidence(),
    )
    tally = WarningTally(raised=1, decided=1, borne_out=1)
    resolved = DecisionRecord(
        decision="EarlyWarningResolved",
        reason="WarningBorneOut",
        message=f"The early warning on {V2} was borne out.",
        identity=(record_name(model, raised),),
        slo=TPR_SLO,
        verdict="Violated",
        revision=V2,
        early_warning={
            "warningRecord": record_name(model, raised),
            "raisedAt": format_time(RAISED_AT),
            "borneOut": True,
            "slos": [TPR_SLO],
        },
    )
    decisions = [
        *history.decisions,
        build_decision(model, raised, RAISED_AT),
        build_decision(model, resolved, RESOLVED_AT),
    ]
    for item in decisions:
        item["metadata"]["namespace"] = "clinic"
    body["status"]["earlyWarning"] = {
        "state": "Clear",
        "reason": "NoShift",
        "message": f"No shift against {V1} and no watched estimate past its threshold.",
        "since": format_time(T0 + timedelta(hours=30)),
        "warningSince": None,
        "revision": V1,
        "action": "Alert",
        "watching": ["scoreDistribution", "flagRate", "subgroupMix", "estimates"],
        "firing": [],
        "holdingRollout": False,
        "estimates": [dict(e) for e in result.estimates],
        "open": [],
        "warnings": tally.write(),
    }
    return Story(body, decisions, history.end), raised.early_warning, body


def _content(history: Story) -> dict[str, Any]:
    return build_content(read_input(history.model, history.decisions, history.end))


def test_a_borne_out_warning_shows_its_estimate_beside_the_labelled_gap_of_the_same_pair() -> None:
    history, evidence, body = _with_warning(story())
    section = _content(history)["earlyWarnings"]

    tally = body["status"]["earlyWarning"]["warnings"]
    assert section["precision"] == {
        "raised": tally["raised"],
        "decided": tally["decided"],
        "borneOut": tally["borneOut"],
        "precision": float(tally["precision"]),
    }
    assert section["current"]["state"] == "Clear"
    (warning,) = section["warnings"]
    assert warning["began"] == format_time(RAISED_AT)
    assert warning["revision"] == V2
    assert warning["firing"] == ["flagRate", "estimates"]
    assert warning["borneOut"] is True
    assert warning["resolvedBy"]["verdict"] == "Violated"
    (estimate,) = warning["estimates"]
    recorded = evidence["estimates"][0]
    assert estimate["groups"] == recorded["groups"] == "White vs Black"
    assert (estimate["estimate"], estimate["lower"], estimate["upper"]) == tuple(
        float(recorded[key]) for key in ("estimate", "lower", "upper")
    )
    # The labelled verdict's evidence: the story's Violated record, "Black vs White" 0.37.
    violated = next(
        d["spec"]
        for d in history.decisions
        if d["spec"]["decision"] == "VerdictChanged"
        and d["spec"].get("verdict") == "Violated"
        and d["spec"]["revision"] == V2
    )
    realised = estimate["realised"]
    assert realised["decided"] and realised["verdict"] == "Violated"
    assert (realised["estimate"], realised["lower"], realised["upper"]) == tuple(
        float(violated["evidence"][key]) for key in ("estimate", "lower", "upper")
    )


def test_the_page_has_the_early_warning_section_with_the_same_figures() -> None:
    history, _, _ = _with_warning(story())
    page = render_html(_content(history))
    assert 'id="early-warnings"' in page
    assert "0.310 (0.170 to 0.450)" in page  # estimated, from scores
    assert "0.370 (0.220 to 0.500)" in page  # realised, on labels
    assert "precision: 1.000" in page


def test_the_labelled_value_of_a_pair_with_a_small_cell_is_withheld() -> None:
    # "Other" has 7 patients with the outcome: the record marks it suppressed.
    history, _, _ = _with_warning(story(), pair=("White", "Other"))
    content = _content(history)
    realised = content["earlyWarnings"]["warnings"][0]["estimates"][0]["realised"]
    assert realised["decided"] and realised["hidden"]
    assert "estimate" not in realised


def test_the_labelled_gap_of_another_pair_is_the_difference_of_its_groups() -> None:
    history, _, _ = _with_warning(story(), pair=("Asian", "Black"))
    realised = _content(history)["earlyWarnings"]["warnings"][0]["estimates"][0]["realised"]
    # The story's Violated evidence: TPR 0.66 for Asian, 0.35 for Black; no interval of a
    # pair the record did not compare.
    assert (realised["estimate"], realised["lower"], realised["upper"]) == (0.31, None, None)


def test_a_warning_not_yet_decided_says_so() -> None:
    history, _, _ = _with_warning(story())
    decisions = [d for d in history.decisions if d["spec"]["decision"] != "EarlyWarningResolved"]
    decisions = [
        d for d in decisions
        if not (d["spec"].get("verdict") == "Violated" and d["spec"].get("revision") == V2)
    ]  # fmt: skip
    section = _content(Story(history.model, decisions, history.end))["earlyWarnings"]
    (warning,) = section["warnings"]
    assert warning["borneOut"] is None
    assert warning["estimates"][0]["realised"] == {"decided": False, "note": "not yet decided"}


def test_a_model_that_declares_no_early_warning_and_has_none_has_no_such_section() -> None:
    history = story()
    del history.model["spec"]["earlyWarning"]
    content = _content(history)
    assert content["earlyWarnings"] is None
    assert 'id="early-warnings"' not in render_html(content)
