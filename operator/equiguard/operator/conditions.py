"""The model's conditions, Kubernetes-style: each keeps its lastTransitionTime until its
status changes. Pure: building them records nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import Condition, PriorStatus
from equiguard.engine.verdict import Verdict, worst
from equiguard.operator.draft import Draft, Observation
from equiguard.operator.follow import follow_message
from equiguard.operator.promotion import lineage_head


def condition(
    prior: PriorStatus,
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> Condition:
    """A condition; its transition time moves only when its status does."""
    before = prior.condition(type_)
    changed = before is None or before.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition=now if changed or before is None else before.last_transition,
        observed_generation=generation,
    )


def conditions(obs: Observation, draft: Draft) -> list[Condition]:
    """The model's conditions after this evaluation: Ready, SLOsMet, Degraded,
    RevisionApplied, when it recalibrates AwaitingApproval and Recalibrated, and with
    spec.earlyWarning, EarlyWarning."""

    def make(type_: str, status: str, reason: str, message: str) -> Condition:
        return condition(obs.prior, type_, status, reason, message,
                         now=obs.now, generation=obs.model.generation)  # fmt: skip

    return [
        _ready(obs, draft, make),
        _slos_met(obs, make),
        _degraded(obs, draft, make),
        _revision_applied(obs, draft, make),
        *_recalibration(obs, draft, make),
        *_early_warning(obs, make),
    ]


Make = Callable[[str, str, str, str], Condition]


def _ready(obs: Observation, draft: Draft, make: Make) -> Condition:
    serving = draft.next_serving.bento
    if obs.apply_error:
        return make("Ready", "False", obs.apply_reason, obs.apply_error)
    if obs.deployment_ready and serving == draft.serving.bento:
        return make("Ready", "True", "Available", f"Revision {serving} is serving.")
    message = obs.deployment_message or f"Revision {serving} is rolling out."
    return make("Ready", "False", "Progressing", message)


def _slos_met(obs: Observation, make: Make) -> Condition:
    # No SLO at all demonstrates nothing to breach: the condition reads Met.
    overall = worst(r.verdict for r in obs.results) if obs.results else Verdict.MET
    if overall == Verdict.VIOLATED:
        violated = ", ".join(r.name for r in obs.results if r.verdict == Verdict.VIOLATED)
        return make("SLOsMet", "False", "SLOViolated", f"Violated: {violated}.")
    if overall == Verdict.INCONCLUSIVE:
        unknown = ", ".join(r.name for r in obs.results if r.verdict == Verdict.INCONCLUSIVE)
        return make("SLOsMet", "Unknown", "InsufficientData",
                    f"Inconclusive (never counted as met): {unknown}.")  # fmt: skip
    return make("SLOsMet", "True", "AllSLOsMet", "Every SLO is Met.")


def _degraded(obs: Observation, draft: Draft, make: Make) -> Condition:
    model, serving = obs.model, draft.next_serving.bento
    violated = [r.name for r in obs.results if r.verdict == Verdict.VIOLATED]
    if violated:
        return make("Degraded", "True", "SLOViolated",
                    f"Violated on {draft.serving.bento}: {', '.join(violated)}.")  # fmt: skip
    if serving != lineage_head(model.bento, draft.revisions):
        instead = f"Serving {serving} instead of {model.bento}."
        return make("Degraded", "True", "RolledBack", instead)
    return make("Degraded", "False", "AsExpected", "Nothing is degraded.")


def _revision_applied(obs: Observation, draft: Draft, make: Make) -> Condition:
    model, serving = obs.model, draft.next_serving.bento
    head = lineage_head(model.bento, draft.revisions)
    if serving == model.bento:
        return make("RevisionApplied", "True", "Applied",
                    f"spec.model.bento {model.bento} is serving.")  # fmt: skip
    if serving == head:
        promoted = f"spec.model.bento {model.bento} serves as its promoted recalibration {head}."
        return make("RevisionApplied", "True", "Recalibrated", promoted)
    message = not_applied_message(model, draft, head)
    return make("RevisionApplied", "False", "RevisionQuarantined", message)


def not_applied_message(model: ClinicalModel, draft: Draft, head: str) -> str:
    """Why the spec's revision (its lineage head) does not serve, and how to retry it."""
    quarantined = draft.revision(head)
    why = quarantined.quarantine_reason if quarantined is not None else ""
    return (
        f"spec.model.bento {model.bento} is not applied: {head} was rolled back and is "
        f"quarantined ({why}) {draft.next_serving.bento} serves instead. To retry it, run "
        f"`kubectl annotate clm {model.name} {names.RETRY_ANNOTATION}={head}`; "
        f"to move on, set spec.model.bento to a new revision."
    )


def _recalibration(obs: Observation, draft: Draft, make: Make) -> list[Condition]:
    if not obs.model.recalibrates:
        return []
    found = draft.follow
    if found.kind == "Awaiting":
        awaiting = make("AwaitingApproval", "True", "AwaitingApproval",
                        follow_message(obs.model, found))  # fmt: skip
    else:
        awaiting = make("AwaitingApproval", "False", "NoCandidate",
                        "No recalibrated revision waits for an approval.")  # fmt: skip
    serving = draft.revision(draft.next_serving.bento)
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


_WARNING_STATUS = {"Warning": "True", "Clear": "False", "Unavailable": "Unknown"}


def _early_warning(obs: Observation, make: Make) -> list[Condition]:
    """True while the early warning holds; Unknown when it could not be assessed."""
    result = obs.early_warning
    if obs.model.early_warning is None or result is None:
        return []
    return [make("EarlyWarning", _WARNING_STATUS[result.state], result.reason, result.message)]
