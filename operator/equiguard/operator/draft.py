"""One decision's input and its working value.

`Observation` is what the handler gathered for one evaluation; `Draft` is the
decision as it is being made, a frozen value that each step of the chain in
`decide` takes and returns anew. Steps never read a clock: `obs.now` is the time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from equiguard.contracts.approval import Approval
from equiguard.contracts.early_warning_status import EarlyWarningMemory
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.records import DecisionRecord
from equiguard.contracts.status import ActionEntry, PriorStatus, RevisionRecord, upsert_revision
from equiguard.engine.verdict import Verdict
from equiguard.operator.early_warning import WarningResult
from equiguard.operator.manifests import Revision
from equiguard.operator.pacing import log_horizon
from equiguard.operator.promotion import FollowUp, RecalibrationRun
from equiguard.operator.serving import ServingPlan


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
    early_warning: WarningResult | None = None  # when the model declares spec.earlyWarning


@dataclass(frozen=True)
class Draft:
    """The decision so far: the history, the log, and what to write and create."""

    serving: Revision  # the revision the statistics are of
    next_serving: Revision  # the revision to serve after this evaluation
    revisions: tuple[RevisionRecord, ...]
    actions: tuple[ActionEntry, ...]
    last_action: str
    records: tuple[DecisionRecord, ...] = ()
    jobs: tuple[str, ...] = ()  # SLOs whose recalibration Job to create
    held_back: tuple[tuple[str, str], ...] = ()  # (SLO, reason its action waits)
    follow: FollowUp = field(default_factory=FollowUp)
    early_warning: EarlyWarningMemory | None = None  # set by warnings.note_early_warning

    @classmethod
    def start(cls, obs: Observation) -> Draft:
        horizon = log_horizon(obs.model)
        return cls(
            serving=obs.plan.revision,
            next_serving=obs.plan.revision,
            revisions=obs.prior.revisions,
            actions=tuple(entry for entry in obs.prior.actions if obs.now - entry.time < horizon),
            last_action=obs.prior.last_action,
        )

    @property
    def moves_serving(self) -> bool:
        """Whether this evaluation moves serving off the observed revision (a rollback or a
        promotion)."""
        return self.next_serving != self.serving

    def revision(self, tag: str) -> RevisionRecord | None:
        return next((r for r in self.revisions if r.revision == tag), None)

    def held_back_of(self, slo: str) -> str:
        return dict(self.held_back).get(slo, "")

    def recording(self, record: DecisionRecord) -> Draft:
        return replace(self, records=(*self.records, record))

    def with_revision(self, record: RevisionRecord) -> Draft:
        return replace(self, revisions=upsert_revision(self.revisions, record))


Step = Callable[[Observation, Draft], Draft]


def run_chain(steps: Sequence[Step], obs: Observation, draft: Draft) -> Draft:
    """Each step in order, each on the draft the one before it returned."""
    for step in steps:
        draft = step(obs, draft)
    return draft
