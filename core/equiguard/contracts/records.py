"""The decision record contract: EquityDecisions, the immutable audit trail of
what the operator decided. The operator writes them (`build_decision`);
`equiguard decisions` and the report read them back.

A record's name is derived from what makes the decision unique (the model's
UID, the kind of decision, the SLO, the revisions, the start of the episode),
never from the clock alone, so a decision retried after a crash writes the same
record again (and the API server answers AlreadyExists) instead of a second one.

`read` is the one reader of a stored record: only the fields named in
`StoredDecision` come back, so nothing else a record might carry can reach a
reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.approval import Approval
from equiguard.contracts.early_warning_status import WarningEvidence, WarningResolution
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import format_time, parse_time, read_number

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
        "EarlyWarningRaised",
        "WarningBorneOut",
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
    # An early warning's signals, estimates and reference, or how labels decided it.
    early_warning: Mapping[str, Any] = field(default_factory=dict)

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
        ("earlyWarning", record.early_warning),
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


@dataclass(frozen=True)
class GroupPoint:
    """One group's metric at one evaluation, as exported (counts 1-10 already withheld)."""

    group: str
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int | None
    suppressed: bool


@dataclass(frozen=True)
class Evidence:
    """What a decision was made on: the compared quantity, its interval and each group."""

    metric: str
    attribute: str
    window: str
    confidence: str
    threshold: str
    worst_group: str
    estimate: float | None
    lower: float | None
    upper: float | None
    groups: tuple[GroupPoint, ...]


@dataclass(frozen=True)
class StoredDecision:
    """An EquityDecision as read back from the API server."""

    name: str
    model: str
    model_uid: str
    time: datetime
    decision: str
    reason: str
    message: str
    slo: str
    verdict: str
    previous_verdict: str
    revision: str
    target_revision: str
    job: str
    dry_run: bool
    enforcement: str
    generation: int
    evidence: Evidence | None
    approval: Approval | None = None
    # `spec.earlyWarning`: what an EarlyWarning rests on, or how labels resolved one.
    warning: WarningEvidence | None = None
    warning_resolution: WarningResolution | None = None


def read(body: Mapping[str, Any]) -> StoredDecision:
    """The record in an EquityDecision body as the API server returns it."""
    spec = body.get("spec", {})
    return StoredDecision(
        name=_text(body.get("metadata", {}), "name"),
        model=_text(spec, "model"),
        model_uid=_text(spec, "modelUID"),
        time=parse_time(spec["time"]),
        decision=_text(spec, "decision"),
        reason=_text(spec, "reason"),
        message=_text(spec, "message"),
        slo=_text(spec, "slo"),
        verdict=_text(spec, "verdict"),
        previous_verdict=_text(spec, "previousVerdict"),
        revision=_text(spec, "revision"),
        target_revision=_text(spec, "targetRevision"),
        job=_text(spec, "job"),
        dry_run=bool(spec.get("dryRun", False)),
        enforcement=_text(spec, "enforcement"),
        generation=int(spec.get("generation", 0)),
        evidence=_evidence(spec.get("evidence")),
        approval=_approval(spec.get("approval")),
        **_early_warning(spec.get("earlyWarning")),
    )


def _early_warning(raw: object) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or not raw:
        return {}
    if "warningRecord" in raw:
        return {"warning_resolution": WarningResolution.read(raw)}
    return {"warning": WarningEvidence.read(raw)}


def read_groups(rows: object) -> tuple[GroupPoint, ...]:
    """Each group's row of an evidence block, as exported."""
    if not isinstance(rows, list | tuple):
        return ()
    return tuple(
        GroupPoint(
            group=_text(row, "group"),
            estimate=read_number(row.get("estimate")),
            lower=read_number(row.get("lower")),
            upper=read_number(row.get("upper")),
            n=_count(row.get("n")),
            suppressed=bool(row.get("suppressed", False)),
        )
        for row in rows
        if isinstance(row, Mapping)
    )


def _evidence(raw: object) -> Evidence | None:
    if not isinstance(raw, Mapping) or not raw:
        return None
    return Evidence(
        metric=_text(raw, "metric"),
        attribute=_text(raw, "attribute"),
        window=_text(raw, "window"),
        confidence=_text(raw, "confidence"),
        threshold=_text(raw, "threshold"),
        worst_group=_text(raw, "worstGroup"),
        estimate=read_number(raw.get("estimate")),
        lower=read_number(raw.get("lower")),
        upper=read_number(raw.get("upper")),
        groups=read_groups(raw.get("groups", [])),
    )


def _approval(raw: object) -> Approval | None:
    if not isinstance(raw, Mapping) or not raw.get("by"):
        return None
    return Approval(
        _text(raw, "revision"), _text(raw, "by"), _text(raw, "reason"), _text(raw, "time")
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key, "")
    return value if isinstance(value, str) else str(value)
