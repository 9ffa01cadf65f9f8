"""Acting on confirmed violations: roll back, recalibrate, or record why the action
waits (a step of `decide`, pure).

An SLO's action runs only while the observed revision still serves: once one
SLO rolled it back, the others concern a revision no longer served.
"""

from __future__ import annotations

from dataclasses import replace

from equiguard.contracts import names
from equiguard.contracts.model import SloAction
from equiguard.contracts.records import DecisionRecord, record_name
from equiguard.contracts.status import ActionEntry, RevisionRecord, format_time
from equiguard.engine.verdict import Verdict
from equiguard.operator import pacing
from equiguard.operator.draft import Draft, Observation, SloResult
from equiguard.operator.manifests import Revision
from equiguard.operator.serving import last_good


def act_on_violations(obs: Observation, draft: Draft) -> Draft:
    results = {result.name: result for result in obs.results}
    for slo in obs.model.slos:
        result = results.get(slo.name)
        if result is None or result.verdict != Verdict.VIOLATED:
            continue
        if draft.moves_serving:
            return draft
        if slo.action == "Rollback":
            draft = rollback(obs, draft, slo, result)
        elif slo.action == "Recalibrate":
            draft = recalibrate(obs, draft, slo, result)
    return draft


def rollback(obs: Observation, draft: Draft, slo: SloAction, result: SloResult) -> Draft:
    target = last_good(draft.revisions, exclude=draft.serving.bento)
    if target is None:
        return hold_back(obs, draft, slo, result, "NoGoodRevision")
    reason = pacing.held_back("Rollback", obs.model, draft.actions, obs.now)
    if reason:
        return hold_back(obs, draft, slo, result, reason)
    return fall_back(obs, draft, slo, result, target, "")


def recalibrate(obs: Observation, draft: Draft, slo: SloAction, result: SloResult) -> Draft:
    model, tag = obs.model, draft.serving.bento
    job = names.recalibration_job_name(model.name, tag, slo.name)
    dry = model.dry_run
    logged = any(
        entry.slo == slo.name
        and entry.revision == tag
        and entry.action == "Recalibrate"
        and entry.dry_run == dry
        for entry in draft.actions
    )
    if logged:
        return draft  # this revision's recalibration for this SLO already started
    # A Job that exists but is not logged was created just before a crash:
    # finish the bookkeeping, which pacing must not block.
    resumed = job in obs.existing_jobs and not dry
    if not resumed:
        reason = pacing.held_back("Recalibrate", model, draft.actions, obs.now)
        if reason:
            return hold_back(obs, draft, slo, result, reason)
    # Clinically, a revision that confirmed-violates an equity SLO should not
    # serve while its recalibration is prepared: fall back first when there
    # is a good revision to fall back to (Enforce only; DryRun changes nothing).
    target = None if dry else last_good(draft.revisions, exclude=tag)
    if target is not None:
        draft = fall_back(obs, draft, slo, result, target, " while its recalibration is prepared")
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
    draft = _log_action(obs, draft, "Recalibrate", slo.name, record,
                        f"{prefix} {tag} ({job}){fallback}")  # fmt: skip
    return draft if dry else replace(draft, jobs=(*draft.jobs, slo.name))


def fall_back(
    obs: Observation,
    draft: Draft,
    slo: SloAction,
    result: SloResult,
    target: RevisionRecord,
    why: str,
) -> Draft:
    """Records the rollback to `target` and, unless dry, quarantines the serving revision."""
    tag, dry = draft.serving.bento, obs.model.dry_run
    verb = "would roll back" if dry else "rolled back"
    before = obs.prior.slo(slo.name)
    logged = [entry.time for entry in draft.actions if entry.slo == slo.name]
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
            # When the verdict's run began, and when this SLO last led to a logged
            # action: they tell apart repeated DryRun records.
            format_time(before.since) if before is not None else "",
            format_time(max(logged)) if logged else "",
        ),
        slo=slo.name,
        verdict=result.verdict,
        revision=tag,
        target_revision=target.revision,
        dry_run=dry,
        evidence=result.evidence,
    )
    prefix = "DryRun: would roll back" if dry else "Rollback"
    draft = _log_action(obs, draft, "Rollback", slo.name, record,
                        f"{prefix} {tag} to {target.revision}")  # fmt: skip
    if dry:
        return draft
    current = next(r for r in draft.revisions if r.revision == tag)
    quarantined = replace(
        current,
        met_since=None,
        quarantined_at=obs.now,
        quarantine_reason=f"SLO {slo.name} was Violated; rolled back to {target.revision}.",
    )
    return replace(draft.with_revision(quarantined),
                   next_serving=Revision(target.revision, target.image))  # fmt: skip


def hold_back(
    obs: Observation, draft: Draft, slo: SloAction, result: SloResult, reason: str
) -> Draft:
    draft = replace(draft, held_back=(*draft.held_back, (slo.name, reason)))
    before = obs.prior.slo(slo.name)
    if before is not None and before.held_back == reason:
        return draft  # already recorded for this episode
    return draft.recording(
        DecisionRecord(
            decision="ActionSuppressed",
            reason=reason,
            message=f"SLO {slo.name} is Violated but its {slo.action} is held back: "
            f"{pacing.MESSAGES[reason]}.",
            identity=(
                slo.name,
                reason,
                draft.serving.bento,
                format_time(before.since if before is not None else obs.now),
            ),
            slo=slo.name,
            verdict=result.verdict,
            revision=draft.serving.bento,
            dry_run=obs.model.dry_run,
            evidence=result.evidence,
        )
    )


def _log_action(
    obs: Observation, draft: Draft, action: str, slo: str, record: DecisionRecord, summary: str
) -> Draft:
    entry = ActionEntry(
        time=obs.now,
        action=action,
        slo=slo,
        revision=draft.serving.bento,
        dry_run=obs.model.dry_run,
        record=record_name(obs.model, record),
    )
    return replace(draft.recording(record), actions=(*draft.actions, entry), last_action=summary)
