"""What a report is made from, as frozen values, and how raw API bodies become them.

`read_input` is pure: it takes the ClinicalModel body, its EquityDecision
bodies (as the API server returns them), the optional development assessment
and owner-provided source attributes, and the time of the report. Only the
fields named here are read, so nothing else a record might carry (and nothing
that could identify a patient) can reach the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from equiguard.contracts import change_control, records
from equiguard.contracts import model as contracts_model
from equiguard.contracts.approval import Approval, read_approval
from equiguard.contracts.early_warning import EarlyWarning
from equiguard.contracts.early_warning_status import EarlyWarningStatus
from equiguard.contracts.model import SloAction
from equiguard.contracts.records import GroupPoint, StoredDecision
from equiguard.contracts.sidecar_config import read_sources
from equiguard.contracts.status import (
    Condition,
    PriorStatus,
    RevisionRecord,
    SloStatus,
    parse_time,
)
from equiguard.engine.spec import Subgroups, parse_subgroups


@dataclass(frozen=True)
class Owner:
    name: str
    email: str


@dataclass(frozen=True)
class AttributeSource:
    name: str
    source: str  # "context race", "header X-Patient-Language", "field age"


@dataclass(frozen=True)
class Monitoring:
    """How often the operator evaluates and how its actions are paced."""

    interval: str
    qualification_period: str
    cooldown: str
    max_actions_per_day: int


@dataclass(frozen=True)
class ModelInfo:
    name: str
    namespace: str
    uid: str
    generation: int
    created: datetime | None
    intended_use: str
    owners: tuple[Owner, ...]
    bento: str
    image: str
    replicas: int
    score_path: str
    threshold: str
    enforcement: str
    subgroups: Subgroups
    sources: tuple[AttributeSource, ...]
    slos: tuple[SloAction, ...]
    monitoring: Monitoring
    change_control: change_control.Declared | None
    # The latest approval recorded on the model (`equiguard approve`), acted on or not.
    latest_approval: Approval | None = None
    early_warning: EarlyWarning | None = None  # spec.earlyWarning


@dataclass(frozen=True)
class ModelState:
    """The operator's status of the model."""

    serving: str
    desired: str
    last_good: str
    slo_summary: str
    worst_gap: str
    last_action: str
    last_evaluation: datetime | None
    conditions: tuple[Condition, ...]
    slos: tuple[SloStatus, ...]
    revisions: tuple[RevisionRecord, ...]
    early_warning: EarlyWarningStatus | None = None


@dataclass(frozen=True)
class DevelopmentSlo:
    """An SLO judged once on held-out development data."""

    name: str
    verdict: str
    reason: str
    message: str
    estimate: float | None
    lower: float | None
    upper: float | None
    groups: tuple[GroupPoint, ...]


@dataclass(frozen=True)
class DevelopmentAssessment:
    """The engine's audit of scored held-out records, small cells already suppressed."""

    source: str
    rows: int | None
    first: str
    last: str
    confidence: float
    slos: tuple[DevelopmentSlo, ...]
    # Clinical utility and calibration per group, and the decision curve, as the
    # engine's audit published them (counts 1-10 already withheld).
    utility: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportInput:
    generated_at: datetime
    model: ModelInfo
    state: ModelState
    decisions: tuple[StoredDecision, ...]  # oldest first
    development: DevelopmentAssessment | None = None
    # Owner-provided source attributes: (key, text), keys as in attribute_sets.OWNER_KEYS.
    source_attributes: tuple[tuple[str, str], ...] = ()
    attribute_set: str = ""  # the set's name; empty for the default (attribute_sets)


def _text(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key, default)
    return value if isinstance(value, str) else str(value)


def _image(body: Mapping[str, Any]) -> str:
    """spec.model.image; when the spec names none (the operator's --model-image serves it),
    the image the revision history records for the spec's bento, if it was served yet."""
    model = body.get("spec", {}).get("model", {})
    if model.get("image"):
        return _text(model, "image")
    served = (body.get("status") or {}).get("revisions") or []
    bento = model.get("bento")
    return next((_text(r, "image") for r in served if r.get("revision") == bento), "")


def read_model(body: Mapping[str, Any]) -> ModelInfo:
    """The model as the report shows it: the contract's reading, numbers as written."""
    model = contracts_model.read_model(body)
    meta, spec = body["metadata"], model.spec
    created = meta.get("creationTimestamp")
    evaluation = model.evaluation
    return ModelInfo(
        name=model.name,
        namespace=model.namespace,
        uid=model.uid,
        generation=model.generation,
        created=parse_time(created) if isinstance(created, str) and created else None,
        intended_use=_text(spec, "intendedUse").strip(),
        owners=tuple(Owner(_text(o, "name"), _text(o, "email")) for o in spec.get("owners", [])),
        bento=model.bento,
        image=_image(body),
        replicas=model.replicas,
        score_path=_text(spec.get("prediction", {}), "scorePath"),
        threshold=_text(spec.get("prediction", {}), "threshold"),
        enforcement=model.enforcement,
        subgroups=parse_subgroups(spec.get("subgroups", {})),
        sources=tuple(AttributeSource(a.name, f"{a.source} {a.key}") for a in read_sources(spec)),
        slos=model.slos,
        monitoring=Monitoring(
            interval=str(evaluation["interval"]),
            qualification_period=str(evaluation["qualificationPeriod"]),
            cooldown=str(evaluation["cooldown"]),
            max_actions_per_day=int(evaluation["maxActionsPerDay"]),
        ),
        change_control=change_control.read_declared(spec),
        latest_approval=read_approval(meta),
        early_warning=model.early_warning,
    )


def read_state(status: Mapping[str, Any] | None) -> ModelState:
    status = status or {}
    prior = PriorStatus.read(status)
    last = status.get("lastEvaluationTime")
    return ModelState(
        serving=prior.serving,
        desired=_text(status, "desiredRevision"),
        last_good=_text(status, "lastGoodRevision"),
        slo_summary=_text(status, "sloSummary"),
        worst_gap=_text(status, "worstGap"),
        last_action=prior.last_action,
        last_evaluation=parse_time(last) if isinstance(last, str) and last else None,
        conditions=prior.conditions,
        slos=prior.slos,
        revisions=prior.revisions,
        early_warning=EarlyWarningStatus.read(prior.early_warning),
    )


def belongs_to(record: StoredDecision, model: ModelInfo) -> bool:
    """A record of this model, not of an earlier model of the same name."""
    uid = record.model_uid
    return record.model == model.name and (not uid or not model.uid or uid == model.uid)


def read_input(
    model_body: Mapping[str, Any],
    decision_bodies: Sequence[Mapping[str, Any]],
    generated_at: datetime,
    development: DevelopmentAssessment | None = None,
    source_attributes: Mapping[str, str] | None = None,
    attribute_set: str = "",
) -> ReportInput:
    model = read_model(model_body)
    # Within one evaluation, the change of verdict reads before the action it led to.
    decisions = sorted(
        (record for record in map(records.read, decision_bodies) if belongs_to(record, model)),
        key=lambda d: (d.time, d.decision != "VerdictChanged", d.name),
    )
    return ReportInput(
        generated_at=generated_at,
        model=model,
        state=read_state(model_body.get("status")),
        decisions=tuple(decisions),
        development=development,
        source_attributes=tuple(sorted((source_attributes or {}).items())),
        attribute_set=attribute_set,
    )
