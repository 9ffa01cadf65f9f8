"""What a warning does, as a table: warning x action x labelled verdict -> condition,
records, qualification; and how labels judge a warning once they arrive."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.early_warning_status import EarlyWarningMemory
from equiguard.contracts.model import ClinicalModel, read_model
from equiguard.contracts.records import build_decision, record_name
from equiguard.contracts.status import PriorStatus, RevisionRecord, SloStatus
from equiguard.engine.verdict import Verdict
from equiguard.operator.decide import Decision, decide
from equiguard.operator.draft import Observation, SloResult
from equiguard.operator.early_warning import (
    LAST_GOOD,
    SERVING,
    Reference,
    WarningResult,
    reference_for,
)
from equiguard.operator.manifests import Images
from equiguard.operator.metrics import warning_gauges
from equiguard.operator.serving import plan_serving

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1, V2 = "readmission:v1", "readmission:v2"
IMAGES = Images(sidecar="sidecar:1", job="operator:1", model="runtime:2")
SLOS = ("tpr-gap-race", "calibration-payer", "selection-rate-floor-adi")
WATCHED = "tpr-gap-race"
REFERENCE = Reference(V1, LAST_GOOD, 30 * 86400.0)


def model(action: str = "Alert") -> ClinicalModel:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=3)
    body["spec"]["model"]["bento"] = V2
    body["spec"]["evaluation"] = {"interval": "1m", "qualificationPeriod": "1h"}
    body["spec"]["earlyWarning"]["action"] = action
    return read_model(body)


def revision(tag: str, qualified: bool = False, met_for: timedelta | None = None) -> RevisionRecord:
    return RevisionRecord(
        revision=tag,
        image="runtime:1",
        generation=1,
        first_served=T0 - timedelta(days=2),
        last_served=T0 - timedelta(minutes=1),
        met_since=T0 - met_for if met_for is not None else None,
        qualified_at=T0 - timedelta(days=1) if qualified else None,
    )


def warning(state: str = "Warning") -> WarningResult:
    if state == "Warning":
        return WarningResult(
            "Warning", "EstimateBreached", "Early warning on readmission:v2: tpr gap.", V2,
            REFERENCE,
            signals=({"signal": "flagRate", "dimension": "race", "group": "Black",
                      "current": "0.4100", "reference": "0.3000"},),
            estimates=({"slo": WATCHED, "metric": "tpr", "comparison": "maxGap",
                        "breached": True, "estimate": "0.1500"},),
            signals_fired=1, slos=(WATCHED,),
        )  # fmt: skip
    if state == "Clear":
        return WarningResult("Clear", "NoShift", "No shift.", V2, REFERENCE, slos=(WATCHED,))
    return WarningResult("Unavailable", "NoReadyPods", "No ready pod.", V2, REFERENCE)


def results(verdict: str = "Met") -> tuple[SloResult, ...]:
    """The watched SLO at `verdict`, every other SLO Met."""
    return tuple(
        SloResult(
            name=name,
            verdict=Verdict(verdict if name == WATCHED else "Met"),
            reason="",
            message=f"{name}",
        )
        for name in SLOS
    )


def prior(
    state: str = "Clear",
    open_since: datetime | None = None,
    watched_before: str = "Inconclusive",
    watched_since: datetime = T0 - timedelta(days=3),
    met_for: timedelta = timedelta(hours=2),
) -> PriorStatus:
    early: dict[str, Any] = {"state": state, "since": "2026-02-28T12:00:00Z"}
    if state == "Warning":
        early["warningSince"] = "2026-02-28T12:00:00Z"
    if open_since is not None:
        since = open_since.strftime("%Y-%m-%dT%H:%M:%SZ")
        early["open"] = [
            {"revision": V2, "since": since, "slos": [WATCHED], "record": "rr-earlywarning-1"}
        ]
        early["warnings"] = {"raised": 1, "decided": 0, "borneOut": 0}
    slos = tuple(
        SloStatus(
            name=name,
            verdict=Verdict(watched_before if name == WATCHED else "Met"),
            reason="",
            message="",
            since=watched_since if name == WATCHED else T0 - timedelta(days=3),
            revision=V2,
        )
        for name in SLOS
    )
    return PriorStatus(
        serving=V2,
        revisions=(revision(V1, qualified=True), revision(V2, met_for=met_for)),
        slos=slos,
        early_warning=early,
    )


def observe(
    m: ClinicalModel, before: PriorStatus, found: tuple[SloResult, ...], ew: WarningResult | None
) -> Decision:
    return decide(
        Observation(
            model=m, prior=before, plan=plan_serving(m, before, "", IMAGES),
            deployment_ready=True, deployment_message="", pods=2, results=found,
            existing_jobs=frozenset(), now=T0, early_warning=ew,
        )
    )  # fmt: skip


def condition(decision: Decision) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in decision.status["conditions"] if c["type"] == "EarlyWarning"
    )
    return found


def kinds(decision: Decision) -> list[str]:
    return [record.decision for record in decision.records]


@pytest.mark.parametrize(
    ("state", "action", "verdict", "status", "records", "qualifies"),
    [
        # A warning begins: recorded, the condition is True; only HoldRollout holds.
        ("Warning", "Alert", "Inconclusive", "True", ["EarlyWarning"], False),
        ("Warning", "Alert", "Met", "True", ["EarlyWarning", "RevisionQualified"], True),
        ("Warning", "HoldRollout", "Met", "True", ["EarlyWarning"], False),
        ("Warning", "HoldRollout", "Inconclusive", "True", ["EarlyWarning"], False),
        # No warning: nothing recorded for it, qualification as the labels say.
        ("Clear", "Alert", "Met", "False", ["RevisionQualified"], True),
        ("Clear", "HoldRollout", "Met", "False", ["RevisionQualified"], True),
        ("Clear", "HoldRollout", "Inconclusive", "False", [], False),
        # Not assessed: Unknown, and never a hold.
        ("Unavailable", "HoldRollout", "Met", "Unknown", ["RevisionQualified"], True),
    ],
)  # fmt: skip
def test_a_warning_is_a_condition_and_a_record_and_holds_qualification_only_with_holdrollout(
    state: str, action: str, verdict: str, status: str, records: list[str], qualifies: bool
) -> None:
    d = observe(model(action), prior(), results(verdict), warning(state))
    assert condition(d)["status"] == status
    decided = [k for k in kinds(d) if k != "VerdictChanged"]
    assert decided == records
    v2 = next(r for r in d.status["revisions"] if r["revision"] == V2)
    assert ("qualifiedAt" in v2) == qualifies
    assert d.status["lastGoodRevision"] == (V2 if qualifies else V1)
    holding = state == "Warning" and action == "HoldRollout"
    assert d.status["earlyWarning"]["holdingRollout"] == holding
    assert (d.status["earlyWarning"]["holdMessage"] is not None) == holding
    if holding:
        assert "metSince" not in v2  # the run of Met evaluations starts over when it clears


@pytest.mark.parametrize("action", ["Alert", "HoldRollout"])
def test_a_warning_never_rolls_back_nor_recalibrates(action: str) -> None:
    d = observe(model(action), prior(), results("Met"), warning())
    assert d.serving.bento == V2 and d.jobs == ()
    assert not {"Rollback", "Recalibrate"} & set(kinds(d))


def test_the_warning_record_carries_its_evidence_and_posts_a_warning_event() -> None:
    m = model()
    d = observe(m, prior(), results("Inconclusive"), warning())
    record = next(r for r in d.records if r.decision == "EarlyWarning")
    assert record.event_type == "Warning" and record.reason == "EarlyWarningRaised"
    spec = build_decision(m, record, T0)["spec"]
    assert spec["earlyWarning"]["signals"][0]["signal"] == "flagRate"
    assert spec["earlyWarning"]["reference"] == {
        "revision": V1, "source": LAST_GOOD, "window": "30d",
    }  # fmt: skip
    opened = d.status["earlyWarning"]["open"]
    assert opened == [{"revision": V2, "since": "2026-03-01T12:00:00Z", "slos": [WATCHED],
                       "record": record_name(m, record)}]  # fmt: skip
    assert d.status["earlyWarning"]["warnings"] == {"raised": 1, "decided": 0, "borneOut": 0}


def test_a_warning_is_recorded_once_while_it_holds_and_again_when_it_ends() -> None:
    holding = observe(model(), prior(state="Warning"), results("Inconclusive"), warning())
    assert "EarlyWarning" not in kinds(holding)
    ended = observe(model(), prior(state="Warning"), results("Inconclusive"), warning("Clear"))
    assert "EarlyWarningCleared" in kinds(ended)
    assert condition(ended)["status"] == "False"


def test_an_unavailable_assessment_neither_ends_nor_restarts_a_warning() -> None:
    m = model()
    missed = observe(m, prior(state="Warning"), results("Inconclusive"), warning("Unavailable"))
    assert kinds(missed) == [] and condition(missed)["status"] == "Unknown"
    assert missed.status["earlyWarning"]["warningSince"] == "2026-02-28T12:00:00Z"
    back = PriorStatus(
        serving=V2,
        revisions=prior().revisions,
        slos=prior().slos,
        early_warning=missed.status["earlyWarning"],
    )
    again = observe(m, back, results("Inconclusive"), warning())
    assert "EarlyWarning" not in kinds(again)
    assert again.status["earlyWarning"]["warnings"] == {"raised": 0, "decided": 0, "borneOut": 0}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies the operator's status patches."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def test_a_warning_ends_and_a_new_one_starts_through_merge_patched_status() -> None:
    m, stored = model("HoldRollout"), prior().early_warning
    kinds_seen = []
    for state in ("Warning", "Clear", "Warning"):
        before = PriorStatus(serving=V2, revisions=prior().revisions, slos=prior().slos,
                             early_warning=stored)  # fmt: skip
        d = observe(m, before, results("Inconclusive"), warning(state))
        kinds_seen += [k for k in kinds(d) if k.startswith("EarlyWarning")]
        stored = merge_patch(stored, d.status["earlyWarning"])
        if state == "Clear":
            assert "warningSince" not in stored and "holdMessage" not in stored
    assert kinds_seen == ["EarlyWarning", "EarlyWarningCleared", "EarlyWarning"]
    assert stored["warnings"]["raised"] == 2


def test_replaying_the_start_of_a_warning_writes_the_same_record() -> None:
    m = model()
    first = observe(m, prior(), results("Inconclusive"), warning())
    again = observe(m, prior(), results("Inconclusive"), warning())
    assert [record_name(m, r) for r in first.records] == [record_name(m, r) for r in again.records]


OPENED = T0 - timedelta(days=1)


@pytest.mark.parametrize(
    ("verdict", "before", "before_since", "outcome"),
    [
        ("Violated", "Inconclusive", T0 - timedelta(days=3), "WarningBorneOut"),
        ("Met", "Inconclusive", T0 - timedelta(days=3), "WarningNotBorneOut"),
        # A Met that held before the warning rests on outcomes older than it.
        ("Met", "Met", T0 - timedelta(days=3), None),
        ("Met", "Met", T0 - timedelta(hours=1), "WarningNotBorneOut"),
        ("Inconclusive", "Inconclusive", T0 - timedelta(days=3), None),
    ],
)  # fmt: skip
def test_the_labelled_verdict_decides_whether_a_warning_was_borne_out(
    verdict: str, before: str, before_since: datetime, outcome: str | None
) -> None:
    m = model()
    was = prior(state="Clear", open_since=OPENED, watched_before=before,
                watched_since=before_since)  # fmt: skip
    d = observe(m, was, results(verdict), warning("Clear"))
    resolved = [r for r in d.records if r.decision == "EarlyWarningResolved"]
    tally = d.status["earlyWarning"]["warnings"]
    if outcome is None:
        assert resolved == [] and tally["decided"] == 0
        assert len(d.status["earlyWarning"]["open"]) == 1
        return
    assert [r.reason for r in resolved] == [outcome]
    assert resolved[0].early_warning["borneOut"] == (outcome == "WarningBorneOut")
    assert d.status["earlyWarning"]["open"] == []
    borne = int(outcome == "WarningBorneOut")
    assert tally == {"raised": 1, "decided": 1, "borneOut": borne, "precision": f"{borne:.4f}"}
    memory = EarlyWarningMemory.read(d.status["earlyWarning"])
    assert memory.tally.precision == borne


def test_a_decided_labelled_verdict_is_shown_beside_its_estimate() -> None:
    d = observe(model(), prior(state="Warning"), results("Violated"), warning())
    estimate = d.status["earlyWarning"]["estimates"][0]
    assert estimate["labelledVerdict"] == "Violated"


def test_the_reference_is_the_last_good_revision_or_the_serving_one_until_one_qualified() -> None:
    assert reference_for((revision(V1, qualified=True), revision(V2)), V2, 60.0).source == (
        LAST_GOOD
    )
    alone = reference_for((revision(V2),), V2, 60.0)
    assert (alone.revision, alone.source) == (V2, SERVING)


def test_a_model_without_early_warning_has_no_condition_and_drops_a_stale_block() -> None:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=3)
    body["spec"]["model"]["bento"] = V2
    del body["spec"]["earlyWarning"]
    d = observe(read_model(body), prior(state="Warning"), results("Met"), None)
    assert "EarlyWarning" not in {c["type"] for c in d.status["conditions"]}
    assert d.status["earlyWarning"] is None


def test_the_metric_has_one_series_per_watched_kind_and_none_while_unavailable() -> None:
    d = observe(model(), prior(), results("Inconclusive"), warning())
    assert warning_gauges(d.status["earlyWarning"]) == {
        "scoreDistribution": 0.0, "flagRate": 1.0, "subgroupMix": 0.0, "estimates": 1.0,
    }  # fmt: skip
    unavailable = observe(model(), prior(), results("Inconclusive"), warning("Unavailable"))
    assert warning_gauges(unavailable.status["earlyWarning"]) == {}
