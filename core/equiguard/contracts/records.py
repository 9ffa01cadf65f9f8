"""The decision record contract: EquityDecisions, the immutable audit trail of
what the operator decided. The operator writes them (`build_decision`);
`equiguard decisions` and the report read them back.

A record's name is derived from what makes the decision unique (the model's
UID, the kind of decision, the SLO, the revisions, the start of the episode),
never from the clock alone, so a decision retried after a crash writes the same
record again (and the API server answers AlreadyExists) instead of a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import format_time

# Event type per decision reason; anything not listed is Normal.
_WARNING_REASONS = frozenset(
    {
        "RollbackTriggered",
        "DryRunRollback",
        "RecalibrationJobCreated",
        "DryRunRecalibration",
        "SLOViolated",
        "RevisionQuarantined",
        "CooldownActive",
        "DailyCapReached",
        "NoGoodRevision",
        "RecalibrationCapReached",
        "RecalibrationFailed",
    }
)


@dataclass(frozen=True)
class DecisionRecord:
    """One decision, as it will be written to an EquityDecision and mirrored by an Event."""

    decision: str
    reason: str
    message: str
    identity: tuple[str, ...]
    slo: str = ""
    verdict: str = ""
    previous_verdict: str = ""
    revision: str = ""
    target_revision: str = ""
    job: str = ""
    dry_run: bool = False
    evidence: Mapping[str, Any] = field(default_factory=dict)
    approval: Mapping[str, str] = field(default_factory=dict)
    recalibration: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return "Warning" if self.reason in _WARNING_REASONS else "Normal"


def record_name(model: ClinicalModel, record: DecisionRecord) -> str:
    return names.decision_name(model.name, record.decision, (model.uid, *record.identity))


def build_decision(model: ClinicalModel, record: DecisionRecord, now: datetime) -> dict[str, Any]:
    """The EquityDecision body; the caller adds the owner reference unless records are kept."""
    spec: dict[str, Any] = {
        "model": model.name,
        "modelUID": model.uid,
        "decision": record.decision,
        "time": format_time(now),
        "reason": record.reason,
        "message": record.message,
        "enforcement": model.enforcement,
        "dryRun": record.dry_run,
        "generation": model.generation,
    }
    optional = {
        "revision": record.revision,
        "targetRevision": record.target_revision,
        "job": record.job,
        "slo": record.slo,
        "verdict": record.verdict,
        "previousVerdict": record.previous_verdict,
    }
    spec.update({key: value for key, value in optional.items() if value})
    for key, value in (
        ("evidence", record.evidence),
        ("approval", record.approval),
        ("recalibration", record.recalibration),
    ):
        if value:
            spec[key] = dict(value)
    labels = {
        **names.common_labels(model.name, "decision-record"),
        names.DECISION_LABEL: record.decision,
    }
    if record.slo:
        labels[names.SLO_LABEL] = record.slo
    return {
        "apiVersion": "equiguard.io/v1alpha1",
        "kind": "EquityDecision",
        "metadata": {"name": record_name(model, record), "labels": labels},
        "spec": spec,
    }
