"""Following the serving revision's recalibration Jobs: promote a candidate, or record
once why none is promoted (a step of `decide`, pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.recalibration_result import RecalibrationResult
from equiguard.contracts.records import DecisionRecord
from equiguard.contracts.status import RevisionRecord
from equiguard.operator.draft import Draft, Observation
from equiguard.operator.manifests import Revision
from equiguard.operator.promotion import FollowUp, RecalibrationRun, follow_up, replaceable

# What a follow-up that promotes nothing records, and the condition that shows it.
_UNPROMOTED = {
    "Awaiting": ("RecalibrationPublished", "AwaitingApproval", "AwaitingApproval"),
    "Refused": ("RecalibrationRefused", "", "Recalibrated"),
    "Failed": ("RecalibrationFailed", "RecalibrationFailed", "Recalibrated"),
}


def follow_recalibration(obs: Observation, draft: Draft) -> Draft:
    """Promotes a published candidate, or records once why none is promoted."""
    model = obs.model
    if not model.recalibrates:
        return draft
    sources = replaceable(model.bento, draft.serving.bento, draft.revisions)
    found = follow_up(obs.recalibrations, sources, draft.revisions,
                      obs.approval, model.approval_required)  # fmt: skip
    draft = replace(draft, follow=found)
    run = found.run
    if run is None:
        return draft
    if found.kind == "Promote":
        return _promote(obs, draft, found, run)
    decision, reason, condition_type = _UNPROMOTED[found.kind]
    message = follow_message(model, found)
    before = obs.prior.condition(condition_type)
    if before is not None and before.message == message:
        return draft  # already recorded while it lasts
    return draft.recording(DecisionRecord(
        decision=decision, reason=reason or found.reason, message=message,
        identity=(run.job, found.kind), slo=run.slo, revision=draft.serving.bento,
        target_revision=found.candidate, job=run.job, recalibration=_recalibration(run),
    ))  # fmt: skip


def follow_message(model: ClinicalModel, found: FollowUp) -> str:
    if found.kind == "Awaiting" and found.run is not None:
        return (
            f"Recalibrated revision {found.candidate} of {found.run.revision} met its "
            f"acceptance criteria (Job {found.run.job}) and waits for an approval: "
            f"equiguard approve {model.name} {found.candidate} --by NAME --reason TEXT "
            f"--namespace {model.namespace}"
        )
    return found.message


def _promote(obs: Observation, draft: Draft, found: FollowUp, run: RecalibrationRun) -> Draft:
    tag, candidate, origin = draft.serving.bento, found.candidate, run.revision
    method = run.result.method if run.result is not None else ""
    # The candidate wraps the revision it recalibrates, so it runs on that one's image.
    source = draft.revision(origin)
    image = source.image if source is not None else draft.serving.image
    draft = draft.with_revision(RevisionRecord(
        revision=candidate, image=image, generation=obs.model.generation,
        first_served=obs.now, last_served=obs.now, derived_from=origin, method=method,
    ))  # fmt: skip
    approval = found.approval
    approved = f", approved by {approval.by}" if approval is not None else ""
    instead = f" in place of the fallback {tag}" if origin != tag else ""
    draft = draft.recording(DecisionRecord(
        decision="Promote", reason="RecalibrationPromoted",
        message=f"Revision {candidate}, a {method} recalibration of {origin}, met its "
        f"acceptance criteria{approved} and serves now{instead}. {found.message}",
        identity=(candidate,), slo=run.slo, revision=tag, target_revision=candidate,
        job=run.job, recalibration=_recalibration(run),
        approval={"revision": approval.revision, "by": approval.by,
                  "reason": approval.reason, "time": approval.time} if approval else {},
    ))  # fmt: skip
    return replace(
        draft,
        next_serving=Revision(candidate, image),
        last_action=f"Promote {candidate} (recalibration of {origin})",
    )


def _recalibration(run: RecalibrationRun) -> dict[str, Any]:
    """What a record keeps of a recalibration's result (criteria without their checks)."""
    result = run.result or RecalibrationResult("", "", "", "")
    out: dict[str, Any] = {
        key: value
        for key, value in (
            ("outcome", result.outcome),
            ("reason", result.reason),
            ("method", result.method),
            ("dimension", result.dimension),
            ("candidateRevision", result.candidate_revision),
        )
        if value
    }
    out["job"] = run.job
    out["criteria"] = [
        {"name": c.name, "held": c.held, "message": c.message} for c in result.published_criteria()
    ]
    return out
