"""The operator's decisions, as pure functions of what it observed and the time.

`plan_serving` picks the revision to serve before statistics are gathered;
`decide` turns one evaluation (SLO verdicts of the serving revision, the
previous status, the clock) into the next status, the records and Events to
write, a rollback target and the recalibration Jobs to create. Nothing here
reads a clock or talks to the API server: handlers gather and act.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.approval import Approval
from equiguard.contracts.model import ClinicalModel, SloAction
from equiguard.contracts.records import DecisionRecord, record_name
from equiguard.contracts.status import (
    ActionEntry,
    Condition,
    PriorStatus,
    RevisionRecord,
    SloStatus,
    format_precise_time,
    format_time,
    read_number,
    upsert_revision,
    write_number,
)
from equiguard.engine.comparison import Comparison
from equiguard.engine.verdict import Verdict, worst
from equiguard.operator.conditions import condition
from equiguard.operator.manifests import Images, Revision, spec_revision
from equiguard.operator.promotion import (
    FollowUp,
    RecalibrationRun,
    follow_up,
    lineage_head,
    replaceable,
)

DAY = timedelta(days=1)
# Inconclusive reasons that say the operator could not read statistics at all,
# as opposed to the engine finding too few labelled samples in a group.
GATHER_REASONS = frozenset({"NoReadyPods", "StatisticsUnavailable"})


@dataclass(frozen=True)
class SloResult:
    """One SLO's verdict on the summed statistics of the serving revision."""

    name: str
    verdict: Verdict
    reason: str
    message: str
    breaches: int = 0
    worst_group: str = ""
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    outcomes_needed: int | None = None  # more outcomes per group that would decide it


@dataclass(frozen=True)
class ServingPlan:
    """Which revision to serve, and why the spec's own might not be it."""

    revision: Revision
    lifted_quarantine: str = ""


@dataclass(frozen=True)
class Observation:
    model: ClinicalModel
    prior: PriorStatus
    plan: ServingPlan
    deployment_ready: bool
    deployment_message: str
    pods: int
    results: tuple[SloResult, ...]
    existing_jobs: frozenset[str]
    now: datetime
    apply_error: str = ""
    apply_reason: str = "ChildRejected"
    recalibrations: tuple[RecalibrationRun, ...] = ()
    approval: Approval | None = None


@dataclass(frozen=True)
class Decision:
    serving: Revision
    jobs: tuple[str, ...]  # SLOs whose recalibration Job (for the observed revision) to create
    records: tuple[DecisionRecord, ...]
    status: dict[str, Any]


def plan_serving(
    model: ClinicalModel, prior: PriorStatus, retry_revision: str, images: Images
) -> ServingPlan:
    """Serve the spec's revision (or its promoted recalibration) unless a rollback
    quarantined it.

    A quarantined revision stays out until the spec names another one or the
    retry annotation names it; then the quarantine is lifted. The spec's own
    bento runs on its image, or on the operator's model image when it names none.
    """
    head = lineage_head(model.bento, prior.revisions)
    record = prior.revision(head)
    desired = Revision(head, record.image if record is not None and head != model.bento
                       else spec_revision(model, images).image)  # fmt: skip
    if record is None or not record.quarantined:
        return ServingPlan(desired)
    if retry_revision == head:
        return ServingPlan(desired, lifted_quarantine=head)
    current = prior.revision(prior.serving)
    if current is not None and not current.quarantined:
        return ServingPlan(Revision(current.revision, current.image))
    fallback = last_good(prior.revisions, exclude=head)
    if fallback is not None:
        return ServingPlan(Revision(fallback.revision, fallback.image))
    # Nothing else was ever good: serving the spec beats serving nothing.
    return ServingPlan(desired)


def last_good(revisions: tuple[RevisionRecord, ...], exclude: str) -> RevisionRecord | None:
    """The most recently qualified revision that is not quarantined and not `exclude`."""
    candidates = [
        record
        for record in revisions
        if record.qualified_at is not None and not record.quarantined and record.revision != exclude
    ]
    return max(candidates, key=lambda r: r.qualified_at or r.first_served, default=None)


def _held_back(
    action: str, model: ClinicalModel, actions: tuple[ActionEntry, ...], now: datetime
) -> str:
    """Why pacing forbids `action` now (a CamelCase reason), or "" when it may go ahead."""
    same_mode = [entry for entry in actions if entry.dry_run == model.dry_run]
    pacing = model.pacing
    if any(now - entry.time < timedelta(seconds=pacing.cooldown) for entry in same_mode):
        return "CooldownActive"
    if sum(now - entry.time < DAY for entry in same_mode) >= pacing.max_actions_per_day:
        return "DailyCapReached"
    if action == "Recalibrate":
        period = timedelta(seconds=pacing.recalibration_period)
        recent = [e for e in same_mode if e.action == "Recalibrate" and now - e.time < period]
        if len(recent) >= pacing.max_recalibrations:
            return "RecalibrationCapReached"
    return ""


_HELD_BACK_MESSAGES = {
    "CooldownActive": "the cooldown since the last action has not passed",
    "DailyCapReached": "the model reached its maximum of actions per day",
    "RecalibrationCapReached": "the model reached its maximum of recalibrations per period",
    "NoGoodRevision": "no other revision qualified as good, so there is nothing to roll back to",
}


def _verdict_reason(result: SloResult) -> str:
    if result.verdict == Verdict.VIOLATED:
        return "SLOViolated"
    if result.verdict == Verdict.MET:
        return "SLOMet"
    return result.reason if result.reason in GATHER_REASONS else "InsufficientSubgroupData"


class _Evaluation:
    """The working state of one `decide` call; read top to bottom in `decide`."""

    def __init__(self, obs: Observation) -> None:
        self.obs = obs
        self.model = obs.model
        self.now = obs.now
        self.serving = obs.plan.revision
        self.next_serving = obs.plan.revision
        self.revisions = obs.prior.revisions
        self.actions = tuple(
            entry for entry in obs.prior.actions if obs.now - entry.time < self._log_horizon()
        )
        self.records: list[DecisionRecord] = []
        self.jobs: list[str] = []
        self.held_back: dict[str, str] = {}
        self.last_action = obs.prior.last_action
        self.follow = FollowUp()

    def _log_horizon(self) -> timedelta:
        return max(DAY, timedelta(seconds=self.model.pacing.recalibration_period))

    def record(self, record: DecisionRecord) -> None:
        self.records.append(record)

    # -- revision history -------------------------------------------------

    def note_served(self) -> None:
        obs, tag = self.obs, self.serving.bento
        if obs.plan.lifted_quarantine:
            lifted = obs.prior.revision(obs.plan.lifted_quarantine)
            if lifted is not None:
                self.revisions = upsert_revision(
                    self.revisions, replace(lifted, quarantined_at=None, quarantine_reason="")
                )
                self.record(
                    DecisionRecord(
                        decision="QuarantineLifted",
                        reason="QuarantineLifted",
                        message=f"Revision {tag} is served again at the request of the "
                        f"{names.RETRY_ANNOTATION} annotation.",
                        identity=(tag, format_time(lifted.quarantined_at or self.now)),
                        revision=tag,
                    )
                )
        existing = next((r for r in self.revisions if r.revision == tag), None)
        if existing is None:
            existing = RevisionRecord(
                revision=tag,
                image=self.serving.image,
                generation=self.model.generation,
                first_served=self.now,
                last_served=self.now,
            )
        violated = any(result.verdict == Verdict.VIOLATED for result in obs.results)
        self.revisions = upsert_revision(
            self.revisions,
            replace(
                existing,
                image=self.serving.image,
                last_served=self.now,
                evaluations=existing.evaluations + 1,
                violations=existing.violations + int(violated),
            ),
        )

    def qualify(self) -> None:
        """Start, continue or break the serving revision's run of all-Met evaluations."""
        tag = self.serving.bento
        current = next(r for r in self.revisions if r.revision == tag)
        all_met = bool(self.obs.results) and all(r.verdict == Verdict.MET for r in self.obs.results)
        if not all_met:
            self.revisions = upsert_revision(self.revisions, replace(current, met_since=None))
            return
        met_since = current.met_since or self.now
        qualified_at = current.qualified_at
        period = timedelta(seconds=self.model.pacing.qualification_period)
        if qualified_at is None and self.now - met_since >= period:
            qualified_at = self.now
            self.record(
                DecisionRecord(
                    decision="RevisionQualified",
                    reason="RevisionQualified",
                    message=f"Revision {tag} met all its SLOs for the qualification period "
                    f"since {format_time(met_since)}; it is now the last good revision.",
                    identity=(tag, format_time(met_since)),
                    revision=tag,
                )
            )
        self.revisions = upsert_revision(
            self.revisions, replace(current, met_since=met_since, qualified_at=qualified_at)
        )

    # -- verdicts ---------------------------------------------------------

    def note_verdict_changes(self) -> None:
        by_action = {slo.name: slo.action for slo in self.model.slos}
        for result in self.obs.results:
            before = self.obs.prior.slo(result.name)
            if before is None and result.verdict == Verdict.INCONCLUSIVE:
                continue  # the first look at a new SLO: no change to report
            if before is not None and before.verdict == result.verdict:
                continue
            into_alert = (
                result.verdict == Verdict.VIOLATED and by_action.get(result.name) == "Alert"
            )
            since = format_time(before.since) if before is not None else ""
            previous = before.verdict if before is not None else ""
            self.record(
                DecisionRecord(
                    decision="Alert" if into_alert else "VerdictChanged",
                    reason=_verdict_reason(result),
                    message=f"SLO {result.name} is {result.verdict}"
                    + (f" (was {previous})" if previous else "")
                    + f": {result.message}",
                    identity=(result.name, previous, result.verdict, since),
                    slo=result.name,
                    verdict=result.verdict,
                    previous_verdict=previous,
                    revision=self.serving.bento,
                    evidence=result.evidence,
                )
            )

    # -- recalibration ----------------------------------------------------

    def follow_recalibration(self) -> None:
        """Promotes a published candidate, or records once why none is promoted."""
        if not self.model.recalibrates:
            return
        sources = replaceable(self.model.bento, self.serving.bento, self.revisions)
        found = follow_up(self.obs.recalibrations, sources, self.revisions,
                          self.obs.approval, self.model.approval_required)  # fmt: skip
        self.follow = found
        run, tag = found.run, self.serving.bento
        if run is None:
            return
        if found.kind == "Promote":
            self._promote(found, run)
            return
        decision, reason, condition_type = {
            "Awaiting": ("RecalibrationPublished", "AwaitingApproval", "AwaitingApproval"),
            "Refused": ("RecalibrationRefused", found.reason, "Recalibrated"),
            "Failed": ("RecalibrationFailed", "RecalibrationFailed", "Recalibrated"),
        }[found.kind]
        message = self._follow_message()
        before = self.obs.prior.condition(condition_type)
        if before is not None and before.message == message:
            return  # already recorded while it lasts
        self.record(DecisionRecord(
            decision=decision, reason=reason, message=message, identity=(run.job, found.kind),
            slo=run.slo, revision=tag, target_revision=found.candidate, job=run.job,
            recalibration=_recalibration(run),
        ))  # fmt: skip

    def _promote(self, found: FollowUp, run: RecalibrationRun) -> None:
        tag, candidate, origin = self.serving.bento, found.candidate, run.revision
        method = run.result.get("method", "")
        # The candidate wraps the revision it recalibrates, so it runs on that one's image.
        source = next((r for r in self.revisions if r.revision == origin), None)
        image = source.image if source is not None else self.serving.image
        self.revisions = upsert_revision(self.revisions, RevisionRecord(
            revision=candidate, image=image, generation=self.model.generation,
            first_served=self.now, last_served=self.now, derived_from=origin, method=method,
        ))  # fmt: skip
        self.next_serving = Revision(candidate, image)
        approval = found.approval
        approved = f", approved by {approval.by}" if approval is not None else ""
        instead = f" in place of the fallback {tag}" if origin != tag else ""
        self.record(DecisionRecord(
            decision="Promote", reason="RecalibrationPromoted",
            message=f"Revision {candidate}, a {method} recalibration of {origin}, met its "
            f"acceptance criteria{approved} and serves now{instead}. {found.message}",
            identity=(candidate,), slo=run.slo, revision=tag, target_revision=candidate,
            job=run.job, recalibration=_recalibration(run),
            approval={"revision": approval.revision, "by": approval.by,
                      "reason": approval.reason, "time": approval.time} if approval else {},
        ))  # fmt: skip
        self.last_action = f"Promote {candidate} (recalibration of {origin})"

    def _follow_message(self) -> str:
        found, model = self.follow, self.model
        if found.kind == "Awaiting" and found.run is not None:
            return (
                f"Recalibrated revision {found.candidate} of {found.run.revision} met its "
                f"acceptance criteria (Job {found.run.job}) and waits for an approval: "
                f"equiguard approve {model.name} {found.candidate} --by NAME --reason TEXT "
                f"--namespace {model.namespace}"
            )
        return found.message

    def recalibration_conditions(self, make: Any) -> list[Condition]:
        if not self.model.recalibrates:
            return []
        found = self.follow
        if found.kind == "Awaiting":
            awaiting = make("AwaitingApproval", "True", "AwaitingApproval", self._follow_message())
        else:
            awaiting = make("AwaitingApproval", "False", "NoCandidate",
                            "No recalibrated revision waits for an approval.")  # fmt: skip
        serving = next((r for r in self.revisions if r.revision == self.next_serving.bento), None)
        if serving is not None and serving.derived_from:
            recalibrated = make("Recalibrated", "True", "Promoted",
                                f"{serving.revision} is a {serving.method} recalibration of "
                                f"{serving.derived_from}.")  # fmt: skip
        elif found.kind in ("Refused", "Failed"):
            recalibrated = make("Recalibrated", "False", found.reason, found.message)
        else:
            recalibrated = make("Recalibrated", "False", "NotRecalibrated",
                                "The serving revision is not a recalibration.")  # fmt: skip
        return [awaiting, recalibrated]

    # -- actions ----------------------------------------------------------

    def act_on_violations(self) -> None:
        results = {result.name: result for result in self.obs.results}
        for slo in self.model.slos:
            result = results.get(slo.name)
            if result is None or result.verdict != Verdict.VIOLATED:
                continue
            if self.next_serving != self.serving:
                return  # rolled back: the other actions concern a revision no longer served
            if slo.action == "Rollback":
                self.rollback(slo, result)
            elif slo.action == "Recalibrate":
                self.recalibrate(slo, result)

    def hold_back(self, slo: SloAction, result: SloResult, reason: str) -> None:
        self.held_back[slo.name] = reason
        before = self.obs.prior.slo(slo.name)
        if before is not None and before.held_back == reason:
            return  # already recorded for this episode
        self.record(
            DecisionRecord(
                decision="ActionSuppressed",
                reason=reason,
                message=f"SLO {slo.name} is Violated but its {slo.action} is held back: "
                f"{_HELD_BACK_MESSAGES[reason]}.",
                identity=(
                    slo.name,
                    reason,
                    self.serving.bento,
                    format_time(before.since if before is not None else self.now),
                ),
                slo=slo.name,
                verdict=result.verdict,
                revision=self.serving.bento,
                dry_run=self.model.dry_run,
                evidence=result.evidence,
            )
        )

    def log_action(self, action: str, slo: str, record: DecisionRecord, summary: str) -> None:
        self.actions = (
            *self.actions,
            ActionEntry(
                time=self.now,
                action=action,
                slo=slo,
                revision=self.serving.bento,
                dry_run=self.model.dry_run,
                record=record_name(self.model, record),
            ),
        )
        self.record(record)
        self.last_action = summary

    def rollback(self, slo: SloAction, result: SloResult) -> None:
        tag = self.serving.bento
        target = last_good(self.revisions, exclude=tag)
        if target is None:
            self.hold_back(slo, result, "NoGoodRevision")
            return
        reason = _held_back("Rollback", self.model, self.actions, self.now)
        if reason:
            self.hold_back(slo, result, reason)
            return
        self.fall_back(slo, result, target, "")

    def fall_back(
        self, slo: SloAction, result: SloResult, target: RevisionRecord, why: str
    ) -> None:
        """Records the rollback to `target` and, unless dry, quarantines the serving revision."""
        tag = self.serving.bento
        dry = self.model.dry_run
        verb = "would roll back" if dry else "rolled back"
        record = DecisionRecord(
            decision="Rollback",
            reason="DryRunRollback" if dry else "RollbackTriggered",
            message=f"SLO {slo.name} is Violated on {tag}; {verb} to the last good "
            f"revision {target.revision}{why}. {result.message}",
            identity=(
                slo.name,
                tag,
                target.revision,
                str(dry),
                self._episode(slo.name),
                self._last_logged(slo.name),
            ),
            slo=slo.name,
            verdict=result.verdict,
            revision=tag,
            target_revision=target.revision,
            dry_run=dry,
            evidence=result.evidence,
        )
        prefix = "DryRun: would roll back" if dry else "Rollback"
        self.log_action("Rollback", slo.name, record, f"{prefix} {tag} to {target.revision}")
        if dry:
            return
        current = next(r for r in self.revisions if r.revision == tag)
        self.revisions = upsert_revision(
            self.revisions,
            replace(
                current,
                met_since=None,
                quarantined_at=self.now,
                quarantine_reason=f"SLO {slo.name} was Violated; rolled back to {target.revision}.",
            ),
        )
        self.next_serving = Revision(target.revision, target.image)

    def recalibrate(self, slo: SloAction, result: SloResult) -> None:
        tag = self.serving.bento
        job = names.recalibration_job_name(self.model.name, tag, slo.name)
        logged = any(
            entry.slo == slo.name
            and entry.revision == tag
            and entry.action == "Recalibrate"
            and entry.dry_run == self.model.dry_run
            for entry in self.actions
        )
        if logged:
            return  # this revision's recalibration for this SLO already started
        dry = self.model.dry_run
        # A Job that exists but is not logged was created just before a crash:
        # finish the bookkeeping, which pacing must not block.
        resumed = job in self.obs.existing_jobs and not dry
        if not resumed:
            reason = _held_back("Recalibrate", self.model, self.actions, self.now)
            if reason:
                self.hold_back(slo, result, reason)
                return
        # Clinically, a revision that confirmed-violates an equity SLO should not
        # serve while its recalibration is prepared: fall back first when there
        # is a good revision to fall back to (Enforce only; DryRun changes nothing).
        target = None if dry else last_good(self.revisions, exclude=tag)
        if target is not None:
            self.fall_back(slo, result, target, " while its recalibration is prepared")
        verb = "would start" if dry else "started"
        record = DecisionRecord(
            decision="Recalibrate",
            reason="DryRunRecalibration" if dry else "RecalibrationJobCreated",
            message=f"SLO {slo.name} is Violated on {tag}; {verb} recalibration Job {job} "
            f"within the change-control envelope. {result.message}",
            identity=(job, str(dry)),
            slo=slo.name,
            verdict=result.verdict,
            revision=tag,
            job=job,
            dry_run=dry,
            evidence=result.evidence,
        )
        prefix = "DryRun: would recalibrate" if dry else "Recalibrate"
        fallback = f" and roll back to {target.revision}" if target is not None else ""
        self.log_action("Recalibrate", slo.name, record, f"{prefix} {tag} ({job}){fallback}")
        if not dry:
            self.jobs.append(slo.name)

    def _last_logged(self, slo: str) -> str:
        """When this SLO last led to a logged action: tells apart repeated DryRun records."""
        times = [entry.time for entry in self.actions if entry.slo == slo]
        return format_time(max(times)) if times else ""

    def _episode(self, slo: str) -> str:
        """When the current run of this SLO's verdict began: part of a record's identity."""
        before = self.obs.prior.slo(slo)
        return format_time(before.since) if before is not None else ""

    # -- status -----------------------------------------------------------

    def slo_statuses(self) -> list[SloStatus]:
        statuses = []
        for result in self.obs.results:
            before = self.obs.prior.slo(result.name)
            same_run = (
                before is not None
                and before.verdict == result.verdict
                and before.revision == self.serving.bento
            )
            statuses.append(
                SloStatus(
                    name=result.name,
                    verdict=result.verdict,
                    reason=result.reason,
                    message=result.message,
                    since=before.since if same_run and before is not None else self.now,
                    revision=self.serving.bento,
                    breaches=result.breaches,
                    worst_group=result.worst_group,
                    estimate=result.estimate,
                    lower=result.lower,
                    upper=result.upper,
                    held_back=self.held_back.get(result.name, ""),
                    state=result.state,
                    outcomes_needed=(
                        result.outcomes_needed if result.verdict == Verdict.INCONCLUSIVE else None
                    ),
                )
            )
        return statuses

    def conditions(self) -> list[Condition]:
        obs, model = self.obs, self.model

        def make(type_: str, status: str, reason: str, message: str) -> Condition:
            return condition(
                obs.prior, type_, status, reason, message, now=self.now, generation=model.generation
            )

        serving = self.next_serving.bento
        if obs.apply_error:
            ready = make("Ready", "False", obs.apply_reason, obs.apply_error)
        elif obs.deployment_ready and serving == self.serving.bento:
            ready = make("Ready", "True", "Available", f"Revision {serving} is serving.")
        else:
            ready = make(
                "Ready",
                "False",
                "Progressing",
                obs.deployment_message or f"Revision {serving} is rolling out.",
            )

        violated = [r.name for r in obs.results if r.verdict == Verdict.VIOLATED]
        unknown = [r.name for r in obs.results if r.verdict == Verdict.INCONCLUSIVE]
        # No SLO at all demonstrates nothing to breach: the condition reads Met.
        overall = worst(r.verdict for r in obs.results) if obs.results else Verdict.MET
        if overall == Verdict.VIOLATED:
            slos = make("SLOsMet", "False", "SLOViolated", f"Violated: {', '.join(violated)}.")
        elif overall == Verdict.INCONCLUSIVE:
            slos = make(
                "SLOsMet",
                "Unknown",
                "InsufficientData",
                f"Inconclusive (never counted as met): {', '.join(unknown)}.",
            )
        else:
            slos = make("SLOsMet", "True", "AllSLOsMet", "Every SLO is Met.")

        rolled_back = serving != lineage_head(model.bento, self.revisions)
        if violated:
            degraded = make(
                "Degraded",
                "True",
                "SLOViolated",
                f"Violated on {self.serving.bento}: {', '.join(violated)}.",
            )
        elif rolled_back:
            degraded = make(
                "Degraded", "True", "RolledBack", f"Serving {serving} instead of {model.bento}."
            )
        else:
            degraded = make("Degraded", "False", "AsExpected", "Nothing is degraded.")

        return [
            ready, slos, degraded, self.revision_applied(make, serving),
            *self.recalibration_conditions(make),
        ]  # fmt: skip

    def revision_applied(self, make: Any, serving: str) -> Condition:
        model = self.model
        head = lineage_head(model.bento, self.revisions)
        if serving == model.bento:
            applied: Condition = make(
                "RevisionApplied", "True", "Applied", f"spec.model.bento {model.bento} is serving."
            )
            return applied
        if serving == head:
            recalibrated: Condition = make(
                "RevisionApplied", "True", "Recalibrated",
                f"spec.model.bento {model.bento} serves as its promoted recalibration {head}.",
            )  # fmt: skip
            return recalibrated
        quarantined = next((r for r in self.revisions if r.revision == head), None)
        why = quarantined.quarantine_reason if quarantined is not None else ""
        message = (
            f"spec.model.bento {model.bento} is not applied: {head} was rolled back and is "
            f"quarantined ({why}) {serving} serves instead. To retry it, run "
            f"`kubectl annotate clm {model.name} {names.RETRY_ANNOTATION}={head}`; "
            f"to move on, set spec.model.bento to a new revision."
        )
        before = self.obs.prior.condition("RevisionApplied")
        # A rollback made in this evaluation has its own record.
        rolled_back_now = self.next_serving != self.serving
        if not rolled_back_now and (before is None or before.status != "False"):
            self.record(
                DecisionRecord(
                    decision="RevisionNotApplied",
                    reason="RevisionQuarantined",
                    message=message,
                    identity=(model.bento, str(model.generation), serving),
                    revision=serving,
                    target_revision=head,
                )
            )
        result: Condition = make("RevisionApplied", "False", "RevisionQuarantined", message)
        return result

    def summary(self, statuses: list[SloStatus]) -> tuple[str, str]:
        met = sum(status.verdict == Verdict.MET for status in statuses)
        worst = _worst_gap(self.model, statuses, self.obs.results)
        return f"{met}/{len(self.model.slos)}", worst


def _recalibration(run: RecalibrationRun) -> dict[str, Any]:
    """What a record keeps of a recalibration's result (criteria without their checks)."""
    result = run.result
    out: dict[str, Any] = {
        key: result[key]
        for key in ("outcome", "reason", "method", "dimension", "candidateRevision")
        if result.get(key)
    }
    out["job"] = run.job
    criteria = _published_criteria(result.get("assessment.json", "{}"), out.get("method", ""))
    out["criteria"] = [
        {"name": str(c.get("name", "")), "held": bool(c.get("held")),
         "message": str(c.get("message", ""))}
        for c in criteria if isinstance(c, dict)
    ]  # fmt: skip
    return out


def _published_criteria(assessment: str, method: str) -> list[Any]:
    """The criteria of the candidate that was published (the one that held), or of the
    method's candidate; the assessment lists every candidate tried."""
    try:
        candidates = json.loads(assessment).get("candidates", [])
    except (ValueError, AttributeError):
        return []
    tried = [c for c in candidates if isinstance(c, dict)]
    chosen = next((c for c in tried if c.get("held")), None) or next(
        (c for c in tried if c.get("method") == method), {}
    )
    criteria = chosen.get("criteria", [])
    return criteria if isinstance(criteria, list) else []


def _outcomes_needed(statuses: list[SloStatus]) -> str:
    """Each undecided SLO's outcomes still needed per group, for `kubectl get`."""
    return ", ".join(
        f"{status.name} +{status.outcomes_needed}"
        for status in statuses
        if status.outcomes_needed is not None and status.outcomes_needed > 0
    )


def _worst_gap(
    model: ClinicalModel, statuses: list[SloStatus], results: tuple[SloResult, ...] = ()
) -> str:
    """The largest estimated disparity of any SLO, ranked on the engine's scale (how far
    past its threshold, logs for ratios): each SLO's largest gap, not its decisive one."""
    by_name = {slo.name: slo for slo in model.slos}
    largest = {r.name: _largest_estimate(r.evidence) for r in results}
    scored: list[tuple[float, float, str]] = []
    for status in statuses:
        slo = by_name.get(status.name)
        estimate = largest.get(status.name)
        if estimate is None:
            estimate = status.estimate
        if slo is None or estimate is None:
            continue
        compared = Comparison(slo.comparison, float(slo.threshold))
        scored.append((compared.distance_past(estimate), estimate, status.name))
    if not scored:
        return ""
    _, estimate, name = max(scored, key=lambda item: item[0])
    return f"{write_number(estimate)} ({name})"


def _largest_estimate(evidence: Mapping[str, Any]) -> float | None:
    largest = evidence.get("largestGap")
    return read_number(largest.get("estimate")) if isinstance(largest, Mapping) else None


def decide(obs: Observation) -> Decision:
    """The next status, records, rollback target and Jobs for one evaluation."""
    run = _Evaluation(obs)
    run.note_served()
    run.note_verdict_changes()
    run.follow_recalibration()
    run.act_on_violations()
    if run.next_serving == run.serving:
        run.qualify()
    statuses = run.slo_statuses()
    conditions = run.conditions()
    slo_summary, worst_gap = run.summary(statuses)
    good = last_good(run.revisions, exclude="")
    status: dict[str, Any] = {
        "observedGeneration": obs.model.generation,
        "conditions": [c.write() for c in conditions],
        "servingRevision": run.next_serving.bento,
        "desiredRevision": obs.model.bento,
        "lastGoodRevision": good.revision if good is not None else "",
        "sloSummary": slo_summary,
        "worstGap": worst_gap,
        "outcomesNeeded": _outcomes_needed(statuses),
        "lastAction": run.last_action,
        "lastEvaluationTime": format_precise_time(obs.now),
        "slos": [s.write() for s in statuses],
        "revisions": [r.write() for r in run.revisions],
        "actions": [a.write() for a in run.actions],
    }
    return Decision(
        serving=run.next_serving,
        jobs=tuple(run.jobs),
        records=tuple(run.records),
        status=status,
    )
