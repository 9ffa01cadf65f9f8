"""What a finished recalibration Job means for the serving revision (pure).

A Job writes its result into the ConfigMap `<job>-result` (docs/recalibration.md):
a published candidate is promoted, at once or after a recorded approval; a
refused candidate or a failed Job leaves the serving revision in place and says
why. A promoted candidate serves in place of the revision it recalibrates, so
the spec keeps naming the original while its lineage moves on.
"""

from __future__ import annotations

from dataclasses import dataclass

from equiguard.contracts.approval import Approval
from equiguard.contracts.recalibration_result import RecalibrationResult
from equiguard.contracts.status import RevisionRecord


@dataclass(frozen=True)
class RecalibrationRun:
    """A recalibration Job of the model, as gathered."""

    job: str
    revision: str  # the revision it recalibrates
    slo: str
    state: str  # Running | Complete | Failed
    failure: str = ""  # the Job's Failed condition message
    result: RecalibrationResult | None = None  # <job>-result, once the Job has written it


@dataclass(frozen=True)
class FollowUp:
    """The consequence of the serving revision's finished recalibrations."""

    kind: str = ""  # "" | Promote | Awaiting | Refused | Failed
    run: RecalibrationRun | None = None
    candidate: str = ""
    approval: Approval | None = None

    @property
    def reason(self) -> str:
        if self.run is None:
            return ""
        if self.kind == "Failed":
            return "RecalibrationFailed"
        result = self.run.result
        return (result.reason if result is not None else "") or "RecalibrationRefused"

    @property
    def message(self) -> str:
        if self.run is None:
            return ""
        if self.kind == "Failed":
            return f"Recalibration Job {self.run.job} failed: {self.run.failure}"
        return self.run.result.message if self.run.result is not None else ""


def lineage_head(tag: str, revisions: tuple[RevisionRecord, ...]) -> str:
    """The revision that serves for `tag`: its latest promoted recalibration, recursively."""
    seen = {tag}
    while True:
        children = [r for r in revisions if r.derived_from == tag and r.revision not in seen]
        if not children:
            return tag
        tag = max(children, key=lambda r: r.first_served).revision
        seen.add(tag)


def replaceable(
    spec_bento: str, serving: str, revisions: tuple[RevisionRecord, ...]
) -> tuple[str, ...]:
    """The revisions whose recalibrated candidates may take the serving revision's place.

    The serving revision itself, and, while it serves as the fallback of a
    quarantined lineage head (a Recalibrate that rolled back first), that head:
    its candidate is a new revision, not the quarantined one.
    """
    head = lineage_head(spec_bento, revisions)
    record = next((r for r in revisions if r.revision == head), None)
    if head != serving and record is not None and record.quarantined:
        return (serving, head)
    return (serving,)


def follow_up(
    runs: tuple[RecalibrationRun, ...],
    sources: tuple[str, ...],
    revisions: tuple[RevisionRecord, ...],
    approval: Approval | None,
    approval_required: bool,
) -> FollowUp:
    """Promote, wait for an approval, or report a refusal or failure — for the recalibrations
    of `sources` (see `replaceable`)."""
    known = {record.revision for record in revisions}
    finished = sorted(
        (run for run in runs if run.revision in sources and run.state != "Running"),
        key=lambda run: run.job,
    )
    for run in finished:
        outcome = run.result.outcome if run.result is not None else ""
        candidate = run.result.candidate_revision if run.result is not None else ""
        if outcome == "Published" and candidate:
            if candidate in known:
                continue  # promoted before: its own history entry speaks for it
            if not approval_required:
                return FollowUp("Promote", run, candidate)
            if approval is not None and approval.revision == candidate:
                return FollowUp("Promote", run, candidate, approval)
            return FollowUp("Awaiting", run, candidate)
        if outcome == "Refused":
            return FollowUp("Refused", run)
        if not outcome and run.state == "Failed":
            return FollowUp("Failed", run)
    return FollowUp()
