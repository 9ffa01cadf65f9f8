"""The serving revision's history: served, qualified, and applied or not (steps of
`decide`, pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from equiguard.contracts import names
from equiguard.contracts.records import DecisionRecord
from equiguard.contracts.status import RevisionRecord, format_time
from equiguard.engine.verdict import Verdict
from equiguard.operator.conditions import not_applied_message
from equiguard.operator.draft import Draft, Observation
from equiguard.operator.early_warning import rollout_hold
from equiguard.operator.promotion import lineage_head


def note_served(obs: Observation, draft: Draft) -> Draft:
    """The serving revision served once more (lifting its quarantine when asked to)."""
    tag = draft.serving.bento
    if obs.plan.lifted_quarantine:
        lifted = obs.prior.revision(obs.plan.lifted_quarantine)
        if lifted is not None:
            draft = draft.with_revision(replace(lifted, quarantined_at=None, quarantine_reason=""))
            draft = draft.recording(
                DecisionRecord(
                    decision="QuarantineLifted",
                    reason="QuarantineLifted",
                    message=f"Revision {tag} is served again at the request of the "
                    f"{names.RETRY_ANNOTATION} annotation.",
                    identity=(tag, format_time(lifted.quarantined_at or obs.now)),
                    revision=tag,
                )
            )
    existing = draft.revision(tag) or RevisionRecord(
        revision=tag,
        image=draft.serving.image,
        generation=obs.model.generation,
        first_served=obs.now,
        last_served=obs.now,
    )
    violated = any(result.verdict == Verdict.VIOLATED for result in obs.results)
    return draft.with_revision(
        replace(
            existing,
            image=draft.serving.image,
            last_served=obs.now,
            evaluations=existing.evaluations + 1,
            violations=existing.violations + int(violated),
        )
    )


def qualify(obs: Observation, draft: Draft) -> Draft:
    """Start, continue or break the serving revision's run of all-Met evaluations."""
    if draft.moves_serving:
        return draft  # the revision leaves now: its run ends here
    tag, now = draft.serving.bento, obs.now
    current = next(r for r in draft.revisions if r.revision == tag)
    all_met = bool(obs.results) and all(r.verdict == Verdict.MET for r in obs.results)
    # HoldRollout: a warned revision's run of Met evaluations starts over when it clears.
    if not all_met or rollout_hold(obs.model, obs.early_warning).holding:
        return draft.with_revision(replace(current, met_since=None))
    met_since = current.met_since or now
    qualified_at = current.qualified_at
    period = timedelta(seconds=obs.model.pacing.qualification_period)
    if qualified_at is None and now - met_since >= period:
        qualified_at = now
        draft = draft.recording(
            DecisionRecord(
                decision="RevisionQualified",
                reason="RevisionQualified",
                message=f"Revision {tag} met all its SLOs for the qualification period "
                f"since {format_time(met_since)}; it is now the last good revision.",
                identity=(tag, format_time(met_since)),
                revision=tag,
            )
        )
    return draft.with_revision(replace(current, met_since=met_since, qualified_at=qualified_at))


def note_revision_not_applied(obs: Observation, draft: Draft) -> Draft:
    """Records once that the spec's revision is quarantined and another serves instead."""
    model, serving = obs.model, draft.next_serving.bento
    head = lineage_head(model.bento, draft.revisions)
    if serving in (model.bento, head) or draft.moves_serving:
        return draft  # applied; or serving moves now, which has its own record
    before = obs.prior.condition("RevisionApplied")
    if before is not None and before.status == "False":
        return draft  # recorded when it began
    return draft.recording(
        DecisionRecord(
            decision="RevisionNotApplied",
            reason="RevisionQuarantined",
            message=not_applied_message(model, draft, head),
            identity=(model.bento, str(model.generation), serving),
            revision=serving,
            target_revision=head,
        )
    )
