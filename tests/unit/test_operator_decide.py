"""The operator's decisions, one sentence per behaviour, on simulated time."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.approval import Approval
from equiguard.contracts.model import ClinicalModel, read_model
from equiguard.contracts.names import recalibration_job_name
from equiguard.contracts.recalibration_result import RecalibrationResult
from equiguard.contracts.records import record_name
from equiguard.contracts.status import ActionEntry, PriorStatus, RevisionRecord, SloStatus
from equiguard.operator.decide import Decision, decide
from equiguard.operator.draft import Observation, SloResult
from equiguard.operator.manifests import Images, Revision
from equiguard.operator.promotion import RecalibrationRun
from equiguard.operator.serving import ServingPlan, plan_serving

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1, V2, V3 = "readmission:v1", "readmission:v2", "readmission:v3"
IMAGE = "ghcr.io/equiguard/model-runtime:0.1.0"
# The operator's --model-image, unlike the example's own image.
IMAGES = Images(sidecar="sidecar:1", job="operator:1", model="registry.example.org/runtime:2")


def model(
    bento: str = V2,
    enforcement: str = "Enforce",
    action: str = "Rollback",
    image: bool = True,
    **evaluation: Any,
) -> ClinicalModel:
    """The example at `bento`; without spec.model.image when not `image`."""
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=3)
    spec = body["spec"]
    spec["model"]["bento"] = bento
    if not image:
        del spec["model"]["image"]
    spec["enforcement"] = enforcement
    spec["slos"][0]["action"] = action
    spec["evaluation"] = {
        "interval": "1m",
        "qualificationPeriod": "1h",
        "cooldown": "1h",
        "maxActionsPerDay": 3,
        **evaluation,
    }
    spec["changeControl"] = {
        "methods": ["platt"],
        "maxRecalibrations": {"count": 1, "period": "7d"},
    }
    return read_model(body)


def revision(
    tag: str, qualified: bool = False, quarantined: bool = False, met_since: datetime | None = None
) -> RevisionRecord:
    return RevisionRecord(
        revision=tag,
        image=IMAGE,
        generation=1,
        first_served=T0 - timedelta(days=2),
        last_served=T0 - timedelta(minutes=1),
        met_since=met_since,
        qualified_at=T0 - timedelta(days=1) if qualified else None,
        quarantined_at=T0 - timedelta(hours=1) if quarantined else None,
        quarantine_reason="SLO tpr-gap-race was Violated." if quarantined else "",
    )


def slo_status(
    name: str,
    verdict: str,
    serving: str = V2,
    held_back: str = "",
    since: datetime = T0 - timedelta(minutes=5),
) -> SloStatus:
    return SloStatus(
        name=name,
        verdict=verdict,
        reason="",
        message="",
        since=since,
        revision=serving,
        held_back=held_back,
    )


# Plausible estimates of a Met SLO: a small gap, a ratio near 1, a floor well above 0.50.
MET_ESTIMATES = {
    "tpr-gap-race": 0.04,
    "calibration-payer": 0.95,
    "selection-rate-floor-adi": 0.70,
}


def result(name: str, verdict: str) -> SloResult:
    return SloResult(
        name=name,
        verdict=verdict,
        reason={"Met": "WithinThreshold", "Violated": "ThresholdExceeded"}.get(
            verdict, "InsufficientSamples"
        ),
        message=f"{name} is {verdict}",
        breaches=2 if verdict == "Violated" else 0,
        estimate=0.18 if verdict == "Violated" else MET_ESTIMATES[name],
        evidence={"metric": "tpr", "estimate": "0.1800"},
    )


ALL_SLOS = ("tpr-gap-race", "calibration-payer", "selection-rate-floor-adi")


def results(**verdicts: str) -> tuple[SloResult, ...]:
    """Every SLO Met unless named (with dashes written as underscores)."""
    return tuple(result(name, verdicts.get(name.replace("-", "_"), "Met")) for name in ALL_SLOS)


def observe(
    m: ClinicalModel,
    prior: PriorStatus,
    found: tuple[SloResult, ...],
    now: datetime = T0,
    jobs: frozenset[str] = frozenset(),
    retry: str = "",
    ready: bool = True,
    runs: tuple[RecalibrationRun, ...] = (),
    approval: Approval | None = None,
) -> Decision:
    plan = plan_serving(m, prior, retry, IMAGES)
    return decide(
        Observation(
            model=m,
            prior=prior,
            plan=plan,
            deployment_ready=ready,
            deployment_message="",
            pods=1,
            results=found,
            existing_jobs=jobs,
            now=now,
            recalibrations=runs,
            approval=approval,
        )
    )


def serving_v2_after_v1_qualified(**changes: Any) -> PriorStatus:
    fields: dict[str, Any] = {
        "serving": V2,
        "revisions": (revision(V1, qualified=True), revision(V2)),
        "slos": tuple(slo_status(name, "Met") for name in ALL_SLOS),
    }
    fields.update(changes)
    return PriorStatus(**fields)


def condition(decision: Decision, type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in decision.status["conditions"] if c["type"] == type_)
    return found


def decisions(decision: Decision) -> list[str]:
    return [record.decision for record in decision.records]


# -- images -------------------------------------------------------------------


def test_a_spec_without_an_image_is_served_and_recorded_on_the_operators_model_image() -> None:
    d = observe(model(image=False), PriorStatus(), results())
    assert d.serving == Revision(V2, IMAGES.model)
    (entry,) = d.status["revisions"]
    assert (entry["revision"], entry["image"]) == (V2, IMAGES.model)


def test_the_specs_own_image_is_served_and_recorded_rather_than_the_operators() -> None:
    d = observe(model(), PriorStatus(), results())
    assert d.serving == Revision(V2, IMAGE)
    (entry,) = d.status["revisions"]
    assert entry["image"] == IMAGE


# -- rollback -----------------------------------------------------------------


def test_rolls_back_to_the_last_good_revision_when_a_rollback_slo_is_violated() -> None:
    d = observe(model(), serving_v2_after_v1_qualified(), results(tpr_gap_race="Violated"))
    assert d.serving == Revision(V1, IMAGE)
    assert d.status["servingRevision"] == V1
    assert d.status["lastAction"] == f"Rollback {V2} to {V1}"
    rollback = next(r for r in d.records if r.decision == "Rollback")
    assert (rollback.reason, rollback.revision, rollback.target_revision) == (
        "RollbackTriggered",
        V2,
        V1,
    )
    assert rollback.evidence == {"metric": "tpr", "estimate": "0.1800"}


def test_quarantines_the_revision_it_rolled_back_from() -> None:
    d = observe(model(), serving_v2_after_v1_qualified(), results(tpr_gap_race="Violated"))
    v2 = next(r for r in d.status["revisions"] if r["revision"] == V2)
    assert v2["quarantinedAt"] == "2026-03-01T12:00:00Z"
    assert "tpr-gap-race" in v2["quarantineReason"]


def test_dry_run_records_the_rollback_it_would_make_and_changes_nothing() -> None:
    d = observe(
        model(enforcement="DryRun"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    assert d.serving == Revision(V2, IMAGE)
    rollback = next(r for r in d.records if r.decision == "Rollback")
    assert rollback.dry_run and rollback.reason == "DryRunRollback"
    assert "would roll back" in rollback.message
    assert all("quarantinedAt" not in r for r in d.status["revisions"])
    assert d.status["lastAction"].startswith("DryRun: would roll back")
    assert d.jobs == ()


@pytest.mark.parametrize(
    ("case", "actions", "reason"),
    [
        (
            "within the cooldown of the last action",
            (ActionEntry(T0 - timedelta(minutes=30), "Rollback", "tpr-gap-race", V3, False, "r"),),
            "CooldownActive",
        ),
        (
            "after the daily cap of actions",
            tuple(
                ActionEntry(T0 - timedelta(hours=h), "Rollback", "tpr-gap-race", V3, False, "r")
                for h in (2, 5, 9)
            ),
            "DailyCapReached",
        ),
    ],
)
def test_holds_back_a_rollback(case: str, actions: tuple[ActionEntry, ...], reason: str) -> None:
    d = observe(
        model(), serving_v2_after_v1_qualified(actions=actions), results(tpr_gap_race="Violated")
    )
    assert d.serving == Revision(V2, IMAGE), case
    held = next(r for r in d.records if r.decision == "ActionSuppressed")
    assert held.reason == reason
    assert next(s for s in d.status["slos"] if s["name"] == "tpr-gap-race")["heldBack"] == reason


def test_dry_run_actions_do_not_count_against_enforced_cooldowns() -> None:
    dry = (ActionEntry(T0 - timedelta(minutes=5), "Rollback", "tpr-gap-race", V2, True, "r"),)
    d = observe(
        model(), serving_v2_after_v1_qualified(actions=dry), results(tpr_gap_race="Violated")
    )
    assert d.serving == Revision(V1, IMAGE)


def test_holds_back_a_rollback_when_no_other_revision_ever_qualified() -> None:
    prior = serving_v2_after_v1_qualified(revisions=(revision(V1), revision(V2)))
    d = observe(model(), prior, results(tpr_gap_race="Violated"))
    assert d.serving == Revision(V2, IMAGE)
    assert [r.reason for r in d.records if r.decision == "ActionSuppressed"] == ["NoGoodRevision"]


def test_records_a_held_back_action_once_per_episode() -> None:
    prior = serving_v2_after_v1_qualified(
        revisions=(revision(V1), revision(V2)),
        slos=(
            slo_status("tpr-gap-race", "Violated", held_back="NoGoodRevision"),
            *(slo_status(n, "Met") for n in ALL_SLOS[1:]),
        ),
    )
    d = observe(model(), prior, results(tpr_gap_race="Violated"))
    assert decisions(d) == []


def test_never_rolls_back_to_a_quarantined_revision() -> None:
    prior = serving_v2_after_v1_qualified(
        revisions=(revision(V1, qualified=True, quarantined=True), revision(V2))
    )
    d = observe(model(), prior, results(tpr_gap_race="Violated"))
    assert d.serving == Revision(V2, IMAGE)
    assert "NoGoodRevision" in [r.reason for r in d.records]


@pytest.mark.parametrize("verdict", ["Inconclusive", "Met"])
def test_takes_no_action_unless_the_verdict_is_violated(verdict: str) -> None:
    d = observe(model(), serving_v2_after_v1_qualified(), results(tpr_gap_race=verdict))
    assert d.serving == Revision(V2, IMAGE)
    assert not {"Rollback", "Recalibrate", "ActionSuppressed"} & set(decisions(d))
    assert d.status["actions"] == []


def test_an_alert_slo_only_records_its_violation() -> None:
    d = observe(model(), serving_v2_after_v1_qualified(), results(calibration_payer="Violated"))
    assert d.serving == Revision(V2, IMAGE)
    assert decisions(d) == ["Alert"]
    assert d.records[0].reason == "SLOViolated" and d.records[0].previous_verdict == "Met"


# -- recalibration ------------------------------------------------------------


def test_a_violated_recalibrate_slo_falls_back_to_the_last_good_and_recalibrates_the_violator() -> (
    None
):
    d = observe(
        model(action="Recalibrate"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    job = recalibration_job_name("readmission-risk", V2, "tpr-gap-race")
    assert d.jobs == ("tpr-gap-race",)  # the Job of the observed (violating) revision
    assert decisions(d)[-2:] == ["Rollback", "Recalibrate"]
    rollback = next(r for r in d.records if r.decision == "Rollback")
    assert (rollback.revision, rollback.target_revision) == (V2, V1)
    record = next(r for r in d.records if r.decision == "Recalibrate")
    assert (record.job, record.revision, record.reason) == (job, V2, "RecalibrationJobCreated")
    assert d.serving == Revision(V1, IMAGE)
    v2 = next(r for r in d.status["revisions"] if r["revision"] == V2)
    assert v2.get("quarantinedAt")
    assert [a["action"] for a in d.status["actions"]] == ["Rollback", "Recalibrate"]
    assert d.status["lastAction"] == f"Recalibrate {V2} ({job}) and roll back to {V1}"


def test_a_violated_recalibrate_slo_keeps_serving_when_no_revision_was_ever_good() -> None:
    d = observe(
        model(action="Recalibrate"),
        serving_v2_after_v1_qualified(revisions=(revision(V2),)),
        results(tpr_gap_race="Violated"),
    )
    assert d.jobs == ("tpr-gap-race",)
    assert decisions(d)[-1] == "Recalibrate" and "Rollback" not in decisions(d)
    assert d.serving == Revision(V2, IMAGE)


def test_a_dry_run_recalibrate_neither_rolls_back_nor_creates_a_job() -> None:
    d = observe(
        model(action="Recalibrate", enforcement="DryRun"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    assert d.jobs == () and "Rollback" not in decisions(d)
    assert d.serving == Revision(V2, IMAGE)


def test_the_fallback_is_not_rolled_back_again_nor_recalibrated_after_a_restart() -> None:
    first = observe(
        model(action="Recalibrate", cooldown="1m"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    job = recalibration_job_name("readmission-risk", V2, "tpr-gap-race")
    prior = PriorStatus.read(first.status)
    planned = plan_serving(model(action="Recalibrate"), prior, "", IMAGES)
    assert planned.revision == Revision(V1, IMAGE)
    later = observe(
        model(action="Recalibrate", cooldown="1m"),
        prior,
        results(),
        now=T0 + timedelta(minutes=5),
        jobs=frozenset({job}),
        runs=(RecalibrationRun(job, V2, "tpr-gap-race", "Running"),),
    )
    assert later.jobs == () and later.serving == Revision(V1, IMAGE)
    assert not {"Rollback", "Recalibrate"} & set(decisions(later))


def test_does_not_start_a_second_recalibration_for_the_same_revision_and_slo() -> None:
    first = observe(
        model(action="Recalibrate"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    after = PriorStatus.read(first.status)
    later = observe(
        model(action="Recalibrate", cooldown="1m"),
        after,
        results(tpr_gap_race="Violated"),
        now=T0 + timedelta(hours=2),
    )
    assert later.jobs == ()
    assert "Recalibrate" not in decisions(later)


def test_finishes_the_bookkeeping_of_a_job_created_just_before_a_crash() -> None:
    job = recalibration_job_name("readmission-risk", V2, "tpr-gap-race")
    recent = (ActionEntry(T0 - timedelta(minutes=1), "Rollback", "other", V3, False, "r"),)
    d = observe(
        model(action="Recalibrate"),
        serving_v2_after_v1_qualified(actions=recent),
        results(tpr_gap_race="Violated"),
        jobs=frozenset({job}),
    )
    assert d.jobs == ("tpr-gap-race",)  # created if absent: nothing new when it exists
    assert "ActionSuppressed" not in decisions(d)
    assert [a["action"] for a in d.status["actions"]][-2:] == ["Rollback", "Recalibrate"]
    assert d.serving == Revision(V1, IMAGE)  # the fallback it was about to make, made once


def test_holds_back_recalibrations_beyond_the_cap_per_period() -> None:
    earlier = (ActionEntry(T0 - timedelta(days=3), "Recalibrate", "tpr-gap-race", V1, False, "r"),)
    d = observe(
        model(action="Recalibrate"),
        serving_v2_after_v1_qualified(actions=earlier),
        results(tpr_gap_race="Violated"),
    )
    assert d.jobs == ()
    assert [r.reason for r in d.records if r.decision == "ActionSuppressed"] == [
        "RecalibrationCapReached"
    ]


def test_dry_run_names_the_recalibration_job_it_would_create_and_creates_none() -> None:
    d = observe(
        model(action="Recalibrate", enforcement="DryRun"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated"),
    )
    assert d.jobs == ()
    record = next(r for r in d.records if r.decision == "Recalibrate")
    assert record.dry_run and record.reason == "DryRunRecalibration" and record.job


# -- revision history ---------------------------------------------------------


def test_a_revision_qualifies_after_meeting_every_slo_for_the_qualification_period() -> None:
    prior = serving_v2_after_v1_qualified(
        revisions=(revision(V1, qualified=True), revision(V2, met_since=T0 - timedelta(hours=1)))
    )
    d = observe(model(), prior, results())
    assert decisions(d) == ["RevisionQualified"]
    assert d.status["lastGoodRevision"] == V2


def test_a_revision_does_not_qualify_before_the_period_has_passed() -> None:
    prior = serving_v2_after_v1_qualified(
        revisions=(revision(V1, qualified=True), revision(V2, met_since=T0 - timedelta(minutes=59)))
    )
    d = observe(model(), prior, results())
    assert decisions(d) == []
    assert d.status["lastGoodRevision"] == V1


def test_an_inconclusive_evaluation_restarts_the_qualification_period() -> None:
    prior = serving_v2_after_v1_qualified(
        revisions=(revision(V1, qualified=True), revision(V2, met_since=T0 - timedelta(hours=2)))
    )
    d = observe(model(), prior, results(selection_rate_floor_adi="Inconclusive"))
    v2 = next(r for r in d.status["revisions"] if r["revision"] == V2)
    assert "metSince" not in v2 and "qualifiedAt" not in v2


def test_keeps_serving_the_last_good_revision_while_the_spec_names_a_quarantined_one() -> None:
    prior = serving_v2_after_v1_qualified(
        serving=V1, revisions=(revision(V1, qualified=True), revision(V2, quarantined=True))
    )
    plan = plan_serving(model(), prior, retry_revision="", images=IMAGES)
    assert plan == ServingPlan(Revision(V1, IMAGE))
    d = observe(model(), prior, results())
    applied = condition(d, "RevisionApplied")
    assert applied["status"] == "False" and applied["reason"] == "RevisionQuarantined"
    assert (
        "kubectl annotate clm readmission-risk equiguard.io/retry-revision=" in (applied["message"])
    )
    assert condition(d, "Degraded")["reason"] == "RolledBack"


def test_the_retry_annotation_lifts_the_quarantine_of_the_revision_it_names() -> None:
    prior = serving_v2_after_v1_qualified(
        serving=V1, revisions=(revision(V1, qualified=True), revision(V2, quarantined=True))
    )
    d = observe(model(), prior, results(), retry=V2)
    assert d.serving == Revision(V2, IMAGE)
    assert "QuarantineLifted" in decisions(d)
    assert all("quarantinedAt" not in r for r in d.status["revisions"])


def test_a_new_revision_in_the_spec_is_served_after_a_rollback() -> None:
    prior = serving_v2_after_v1_qualified(
        serving=V1, revisions=(revision(V1, qualified=True), revision(V2, quarantined=True))
    )
    d = observe(model(bento=V3), prior, results())
    assert d.serving == Revision(V3, IMAGE)
    assert [r["revision"] for r in d.status["revisions"]] == [V1, V2, V3]
    assert condition(d, "RevisionApplied")["status"] == "True"


# -- verdicts, conditions and idempotence -------------------------------------


def test_records_each_change_of_verdict_but_not_the_first_inconclusive_look() -> None:
    first = observe(model(), PriorStatus(), results(tpr_gap_race="Inconclusive"))
    assert set(decisions(first)) == {"VerdictChanged"}
    assert {r.slo for r in first.records} == {"calibration-payer", "selection-rate-floor-adi"}
    later = observe(
        model(), PriorStatus.read(first.status), results(), now=T0 + timedelta(minutes=1)
    )
    assert [(r.slo, r.previous_verdict, r.verdict) for r in later.records] == [
        ("tpr-gap-race", "Inconclusive", "Met")
    ]


def test_conditions_say_what_is_met_violated_and_ready_for_the_observed_generation() -> None:
    d = observe(
        model(action="Alert"),
        serving_v2_after_v1_qualified(),
        results(tpr_gap_race="Violated", selection_rate_floor_adi="Inconclusive"),
    )
    assert {c["type"]: (c["status"], c["reason"]) for c in d.status["conditions"]} == {
        "Ready": ("True", "Available"),
        "SLOsMet": ("False", "SLOViolated"),
        "Degraded": ("True", "SLOViolated"),
        "RevisionApplied": ("True", "Applied"),
        "AwaitingApproval": ("False", "NoCandidate"),
        "Recalibrated": ("False", "NotRecalibrated"),
    }
    assert all(c["observedGeneration"] == 3 for c in d.status["conditions"])
    assert d.status["observedGeneration"] == 3
    assert d.status["sloSummary"] == "1/3"
    assert d.status["worstGap"] == "0.1800 (tpr-gap-race)"


def test_inconclusive_slos_are_never_reported_as_met() -> None:
    d = observe(model(), serving_v2_after_v1_qualified(), results(tpr_gap_race="Inconclusive"))
    assert condition(d, "SLOsMet")["status"] == "Unknown"
    assert d.status["sloSummary"] == "2/3"


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = observe(model(), serving_v2_after_v1_qualified(), results())
    later = observe(
        model(), PriorStatus.read(first.status), results(), now=T0 + timedelta(minutes=10)
    )
    assert condition(later, "SLOsMet")["lastTransitionTime"] == "2026-03-01T12:00:00Z"


def test_replaying_an_evaluation_after_a_crash_writes_the_same_records() -> None:
    m, prior = model(), serving_v2_after_v1_qualified()
    first = observe(m, prior, results(tpr_gap_race="Violated"))
    replay = observe(m, prior, results(tpr_gap_race="Violated"), now=T0 + timedelta(seconds=70))
    assert [record_name(m, r) for r in first.records] == [record_name(m, r) for r in replay.records]
    assert replay.serving == first.serving


def test_a_child_the_api_server_refuses_makes_the_model_not_ready_with_its_reason() -> None:
    m, prior = model(), serving_v2_after_v1_qualified()
    d = decide(
        Observation(
            model=m,
            prior=prior,
            plan=plan_serving(m, prior, "", IMAGES),
            deployment_ready=False,
            deployment_message="",
            pods=0,
            results=results(),
            existing_jobs=frozenset(),
            now=T0,
            apply_error="The API server refused a child object: 422: invalid memory quantity",
        )
    )
    ready = condition(d, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ChildRejected")
    assert "invalid memory quantity" in ready["message"]


# -- promotion of recalibrated revisions --------------------------------------

CANDIDATE = "readmission:v2-recal-0a1b2c3d4e"
JOB = recalibration_job_name("readmission-risk", V2, "tpr-gap-race")


def run(outcome: str = "Published", state: str = "Complete") -> RecalibrationRun:
    result = {
        "Published": {"outcome": "Published", "reason": "CriteriaMet", "method": "platt",
                      "candidateRevision": CANDIDATE, "message": "every criterion held",
                      "assessment.json": '{"candidates": [{"method": "platt", "held": true,'
                                         ' "criteria": [{"name": "allSLOsMet", "held": true,'
                                         ' "message": "met", "checks": []}]}]}'},
        "Refused": {"outcome": "Refused", "reason": "CriteriaNotMet", "candidateRevision": "",
                    "message": "maxBrierIncrease failed for Asian"},
        "": {},
    }[outcome]  # fmt: skip
    found = RecalibrationResult.read(result) if result else None
    return RecalibrationRun(JOB, V2, "tpr-gap-race", state, "BackoffLimitExceeded", found)


def recalibrating(approval_required: bool = True, image: bool = True) -> ClinicalModel:
    m = model(action="Recalibrate", image=image)
    spec = {**m.spec, "changeControl": {**m.spec["changeControl"],
                                        "approvalRequired": approval_required}}  # fmt: skip
    return replace(m, spec=spec)


def test_promotes_a_published_candidate_at_once_when_no_approval_is_required() -> None:
    d = observe(recalibrating(False), serving_v2_after_v1_qualified(), results(), runs=(run(),))
    assert d.serving == Revision(CANDIDATE, IMAGE)
    promote = next(r for r in d.records if r.decision == "Promote")
    assert (promote.revision, promote.target_revision, promote.job) == (V2, CANDIDATE, JOB)
    assert promote.recalibration["method"] == "platt"
    assert promote.recalibration["criteria"] == [{"name": "allSLOsMet", "held": True,
                                                  "message": "met"}]  # fmt: skip
    entry = next(r for r in d.status["revisions"] if r["revision"] == CANDIDATE)
    assert (entry["derivedFrom"], entry["method"]) == (V2, "platt")
    assert condition(d, "Recalibrated")["reason"] == "Promoted"


def test_a_candidate_runs_on_the_image_its_source_was_served_with() -> None:
    # The spec names no image: the source ran on the operator's model image.
    prior = serving_v2_after_v1_qualified(revisions=(
        replace(revision(V1, qualified=True), image=IMAGES.model),
        replace(revision(V2), image=IMAGES.model),
    ))  # fmt: skip
    d = observe(recalibrating(False, image=False), prior, results(), runs=(run(),))
    assert d.serving == Revision(CANDIDATE, IMAGES.model)
    entry = next(r for r in d.status["revisions"] if r["revision"] == CANDIDATE)
    assert entry["image"] == IMAGES.model


def test_a_candidate_waits_for_an_approval_that_names_it() -> None:
    prior = serving_v2_after_v1_qualified()
    other = Approval("readmission:v9", "CMIO", "wrong one", "2026-03-01T11:00:00Z")
    waiting = observe(recalibrating(), prior, results(), runs=(run(),), approval=other)
    assert waiting.serving == Revision(V2, IMAGE)
    awaiting = condition(waiting, "AwaitingApproval")
    assert (awaiting["status"], awaiting["reason"]) == ("True", "AwaitingApproval")
    assert f"equiguard approve readmission-risk {CANDIDATE}" in awaiting["message"]
    assert [r.decision for r in waiting.records] == ["RecalibrationPublished"]
    # Recorded once while it waits.
    again = observe(recalibrating(), PriorStatus.read(waiting.status), results(),
                    runs=(run(),), approval=other, now=T0 + timedelta(minutes=1))  # fmt: skip
    assert "RecalibrationPublished" not in decisions(again)

    approval = Approval(CANDIDATE, "CMIO", "Equity board", "2026-03-01T12:30:00Z")
    promoted = observe(recalibrating(), PriorStatus.read(waiting.status), results(),
                       runs=(run(),), approval=approval, now=T0 + timedelta(minutes=2))  # fmt: skip
    assert promoted.serving == Revision(CANDIDATE, IMAGE)
    record = next(r for r in promoted.records if r.decision == "Promote")
    assert record.approval == {"revision": CANDIDATE, "by": "CMIO", "reason": "Equity board",
                               "time": "2026-03-01T12:30:00Z"}  # fmt: skip
    assert condition(promoted, "AwaitingApproval")["status"] == "False"


def test_the_promoted_candidate_keeps_serving_while_the_spec_names_the_original() -> None:
    first = observe(recalibrating(False), serving_v2_after_v1_qualified(), results(),
                    runs=(run(),))  # fmt: skip
    prior = PriorStatus.read(first.status)
    planned = plan_serving(recalibrating(False), prior, "", IMAGES)
    assert planned.revision == Revision(CANDIDATE, IMAGE)
    later = observe(recalibrating(False), prior, results(), runs=(run(),),
                    now=T0 + timedelta(minutes=1))  # fmt: skip
    assert later.serving == Revision(CANDIDATE, IMAGE)
    assert "Promote" not in decisions(later)  # never twice
    applied = condition(later, "RevisionApplied")
    assert (applied["status"], applied["reason"]) == ("True", "Recalibrated")


def test_a_rolled_back_candidate_is_not_replaced_by_the_revision_it_recalibrated() -> None:
    prior = serving_v2_after_v1_qualified(
        serving=V1,
        revisions=(revision(V1, qualified=True), revision(V2),
                   replace(revision(CANDIDATE, quarantined=True), derived_from=V2)),
    )  # fmt: skip
    assert plan_serving(recalibrating(False), prior, "", IMAGES).revision == Revision(V1, IMAGE)


@pytest.mark.parametrize(
    ("outcome", "state", "reason", "message"),
    [
        ("Refused", "Complete", "CriteriaNotMet", "maxBrierIncrease failed for Asian"),
        ("", "Failed", "RecalibrationFailed", "BackoffLimitExceeded"),
    ],
)
def test_a_refused_or_failed_recalibration_keeps_the_revision_and_says_why(
    outcome: str, state: str, reason: str, message: str
) -> None:
    d = observe(recalibrating(), serving_v2_after_v1_qualified(), results(),
                runs=(run(outcome, state),))  # fmt: skip
    assert d.serving == Revision(V2, IMAGE)
    recalibrated = condition(d, "Recalibrated")
    assert (recalibrated["status"], recalibrated["reason"]) == ("False", reason)
    assert message in recalibrated["message"]
    assert len([r for r in d.records if r.job == JOB]) == 1


def test_a_running_recalibration_changes_nothing_yet() -> None:
    d = observe(recalibrating(False), serving_v2_after_v1_qualified(), results(),
                runs=(run(state="Running"),))  # fmt: skip
    assert d.serving == Revision(V2, IMAGE)
    assert not [r for r in d.records if r.job == JOB]


def falling_back_to_v1_while_v2_recalibrates() -> PriorStatus:
    return serving_v2_after_v1_qualified(
        serving=V1,
        revisions=(revision(V1, qualified=True), revision(V2, quarantined=True)),
    )


def test_a_quarantined_revisions_candidate_awaits_approval_while_the_fallback_serves() -> None:
    d = observe(recalibrating(), falling_back_to_v1_while_v2_recalibrates(), results(),
                runs=(run(),))  # fmt: skip
    assert d.serving == Revision(V1, IMAGE)
    awaiting = condition(d, "AwaitingApproval")
    assert awaiting["status"] == "True"
    assert f"{CANDIDATE} of {V2}" in awaiting["message"]
    assert decisions(d).count("RecalibrationPublished") == 1


def test_an_approved_candidate_of_the_quarantined_revision_replaces_the_fallback() -> None:
    approval = Approval(CANDIDATE, "CMIO", "Equity board", "2026-03-01T12:30:00Z")
    d = observe(recalibrating(), falling_back_to_v1_while_v2_recalibrates(), results(),
                runs=(run(),), approval=approval)  # fmt: skip
    assert d.serving == Revision(CANDIDATE, IMAGE)
    promote = next(r for r in d.records if r.decision == "Promote")
    assert (promote.revision, promote.target_revision) == (V1, CANDIDATE)
    assert promote.approval["by"] == "CMIO"
    entry = next(r for r in d.status["revisions"] if r["revision"] == CANDIDATE)
    assert entry["derivedFrom"] == V2
    prior = PriorStatus.read(d.status)
    assert plan_serving(recalibrating(), prior, "", IMAGES).revision == Revision(CANDIDATE, IMAGE)
    later = observe(recalibrating(), prior, results(), runs=(run(),), approval=approval,
                    now=T0 + timedelta(minutes=1))  # fmt: skip
    assert later.serving == Revision(CANDIDATE, IMAGE) and "Promote" not in decisions(later)
    applied = condition(later, "RevisionApplied")
    assert (applied["status"], applied["reason"]) == ("True", "Recalibrated")
    assert condition(later, "Degraded")["status"] == "False"


def test_a_promoted_candidate_of_a_quarantined_revision_can_be_rolled_back() -> None:
    promoted = observe(recalibrating(False), falling_back_to_v1_while_v2_recalibrates(),
                       results(), runs=(run(),))  # fmt: skip
    assert promoted.serving == Revision(CANDIDATE, IMAGE)
    m = model(action="Rollback")
    d = observe(m, PriorStatus.read(promoted.status), results(tpr_gap_race="Violated"),
                now=T0 + timedelta(hours=2))  # fmt: skip
    assert d.serving == Revision(V1, IMAGE)
    rollback = next(r for r in d.records if r.decision == "Rollback")
    assert (rollback.revision, rollback.target_revision) == (CANDIDATE, V1)


def test_the_worst_gap_ranks_ratios_on_the_log_scale_like_the_engine() -> None:
    # A ratio of 1.3 against 0.80 is ln 1.3 + ln 0.8 = 0.039 past; a gap of 0.135
    # against 0.10 is 0.035 past. On a linear scale (0.8 - 1/1.3 = 0.031) the gap
    # would wrongly rank first.
    found = tuple(
        replace(r, estimate=0.135)
        if r.name == "tpr-gap-race"
        else replace(r, estimate=1.3)
        if r.name == "calibration-payer"
        else r
        for r in results()
    )
    d = observe(model(), serving_v2_after_v1_qualified(), found)
    assert d.status["worstGap"] == "1.3000 (calibration-payer)"


def test_the_worst_gap_is_the_largest_gap_not_the_decisive_comparison() -> None:
    # The most confident breach of tpr-gap-race is 0.18, but its largest gap is 0.5425:
    # Worst Gap shows the largest, and ranks it against the other SLOs by it.
    found = tuple(
        replace(r, evidence={**r.evidence, "largestGap": {"groups": "Other vs White",
                                                          "estimate": "0.5425"}})
        if r.name == "tpr-gap-race"
        else replace(r, estimate=1.3)
        if r.name == "calibration-payer"
        else r
        for r in results(tpr_gap_race="Violated")
    )  # fmt: skip
    d = observe(model(), serving_v2_after_v1_qualified(), found)
    assert d.status["worstGap"] == "0.5425 (tpr-gap-race)"


def test_status_says_how_many_more_outcomes_each_undecided_slo_needs() -> None:
    found = tuple(
        replace(r, outcomes_needed=420) if r.name == "tpr-gap-race" else r
        for r in results(tpr_gap_race="Inconclusive")
    )
    d = observe(model(), serving_v2_after_v1_qualified(), found)
    assert d.status["outcomesNeeded"] == "tpr-gap-race +420"
    entry = next(s for s in d.status["slos"] if s["name"] == "tpr-gap-race")
    assert entry["outcomesNeeded"] == 420
    # A Met SLO needs nothing more, whatever the engine's figure.
    met = tuple(replace(r, outcomes_needed=420) for r in results())
    assert observe(model(), serving_v2_after_v1_qualified(), met).status["outcomesNeeded"] == ""


# The decision table: what one evaluation of the TPR gap SLO does, for each verdict,
# action, pacing and enforcement. The other SLOs are Met; v1 qualified, v2 serves.
# (serving afterwards, Jobs created, records written)
ROLLED_BACK, KEPT = Revision(V1, IMAGE), Revision(V2, IMAGE)
JOBS = ("tpr-gap-race",)
VIOLATED_TABLE = [
    ("Alert", False, "Enforce", KEPT, (), ["Alert"]),
    ("Alert", False, "DryRun", KEPT, (), ["Alert"]),
    ("Alert", True, "Enforce", KEPT, (), ["Alert"]),
    ("Alert", True, "DryRun", KEPT, (), ["Alert"]),
    ("Rollback", False, "Enforce", ROLLED_BACK, (), ["VerdictChanged", "Rollback"]),
    ("Rollback", False, "DryRun", KEPT, (), ["VerdictChanged", "Rollback"]),
    ("Rollback", True, "Enforce", KEPT, (), ["VerdictChanged", "ActionSuppressed"]),
    ("Rollback", True, "DryRun", KEPT, (), ["VerdictChanged", "ActionSuppressed"]),
    ("Recalibrate", False, "Enforce", ROLLED_BACK, JOBS,
     ["VerdictChanged", "Rollback", "Recalibrate"]),
    ("Recalibrate", False, "DryRun", KEPT, (), ["VerdictChanged", "Recalibrate"]),
    ("Recalibrate", True, "Enforce", KEPT, (), ["VerdictChanged", "ActionSuppressed"]),
    ("Recalibrate", True, "DryRun", KEPT, (), ["VerdictChanged", "ActionSuppressed"]),
]  # fmt: skip


def _table_case(action: str, paced: bool, enforcement: str, verdict: str) -> Decision:
    dry = enforcement == "DryRun"
    recent = (ActionEntry(T0 - timedelta(minutes=10), "Rollback", "calibration-payer", V1, dry,
                          "r"),)  # fmt: skip
    prior = serving_v2_after_v1_qualified(actions=recent if paced else ())
    return observe(model(enforcement=enforcement, action=action), prior,
                   results(tpr_gap_race=verdict))  # fmt: skip


def _sentence(action: str, paced: bool, enforcement: str) -> str:
    pacing = "within the cooldown" if paced else "with pacing clear"
    return f"a violated {action} SLO {pacing} under {enforcement}"


@pytest.mark.parametrize(
    ("action", "paced", "enforcement", "serving", "jobs", "recorded"),
    VIOLATED_TABLE,
    ids=[_sentence(a, p, e) for a, p, e, *_ in VIOLATED_TABLE],
)
def test_the_decision_table_for_a_violated_slo(
    action: str, paced: bool, enforcement: str, serving: Revision, jobs: tuple[str, ...],
    recorded: list[str],
) -> None:  # fmt: skip
    d = _table_case(action, paced, enforcement, "Violated")
    assert (d.serving, d.jobs, decisions(d)) == (serving, jobs, recorded)
    held = next(s for s in d.status["slos"] if s["name"] == "tpr-gap-race").get("heldBack", "")
    assert held == ("CooldownActive" if paced and action != "Alert" else "")
    logged = [entry["action"] for entry in d.status["actions"]][int(paced) :]
    assert logged == [r for r in recorded if r in ("Rollback", "Recalibrate")]


@pytest.mark.parametrize("verdict", ["Met", "Inconclusive"])
@pytest.mark.parametrize("action", ["Alert", "Rollback", "Recalibrate"])
@pytest.mark.parametrize("paced", [False, True], ids=["pacing clear", "within the cooldown"])
@pytest.mark.parametrize("enforcement", ["Enforce", "DryRun"])
def test_the_decision_table_acts_on_nothing_but_a_violation(
    verdict: str, action: str, paced: bool, enforcement: str
) -> None:
    d = _table_case(action, paced, enforcement, verdict)
    changed = ["VerdictChanged"] if verdict == "Inconclusive" else []
    assert (d.serving, d.jobs, decisions(d)) == (KEPT, (), changed)
    assert d.status["lastAction"] == ""
