"""What a report is made from, as frozen values, and how raw API bodies become them.

`read_input` is pure: it takes the ClinicalModel body, its EquityDecision
bodies (as the API server returns them), the optional development assessment
and owner-provided source attributes, and the time of the report. Only the
fields named here are read, so nothing else a record might carry (and nothing
that could identify a patient) can reach the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from equiguard.contracts import change_control, records
from equiguard.contracts.approval import Approval, read_approval
from equiguard.contracts.model import DEFAULTS, EVALUATION_DEFAULTS
from equiguard.contracts.records import GroupPoint, StoredDecision
from equiguard.contracts.status import (
    Condition,
    PriorStatus,
    RevisionRecord,
    SloStatus,
    parse_time,
)
from equiguard.engine.spec import SLO_DEFAULTS, Subgroups, parse_subgroups


@dataclass(frozen=True)
class Owner:
    name: str
    email: str


@dataclass(frozen=True)
class SloSpec:
    """One SLO as declared, numbers kept as written."""

    name: str
    metric: str
    attribute: str
    comparison: str
    reference: str
    threshold: str
    window: str
    min_samples: int
    confidence: str
    consecutive_breaches: int
    action: str


@dataclass(frozen=True)
class AttributeSource:
    name: str
    source: str  # "context race", "header X-Patient-Language", "field age"


@dataclass(frozen=True)
class ChangeControl:
    methods: tuple[str, ...]
    window: str
    min_outcomes_per_group: int
    approval_required: bool
    max_recalibrations: int
    recalibration_period: str
    acceptance: tuple[tuple[str, str], ...]  # (criterion, value as written)


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
    slos: tuple[SloSpec, ...]
    monitoring: Monitoring
    change_control: ChangeControl | None
    # The latest approval recorded on the model (`equiguard approve`), acted on or not.
    latest_approval: Approval | None = None


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


@dataclass(frozen=True)
class ReportInput:
    generated_at: datetime
    model: ModelInfo
    state: ModelState
    decisions: tuple[StoredDecision, ...]  # oldest first
    development: DevelopmentAssessment | None = None
    # Owner-provided source attributes: (key, text), keys as in hti.OWNER_KEYS.
    source_attributes: tuple[tuple[str, str], ...] = ()


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
    meta, spec = body.get("metadata", {}), body.get("spec", {})
    evaluation = spec.get("evaluation", {})
    created = meta.get("creationTimestamp")
    return ModelInfo(
        name=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 0)),
        created=parse_time(created) if isinstance(created, str) and created else None,
        intended_use=_text(spec, "intendedUse").strip(),
        owners=tuple(Owner(_text(o, "name"), _text(o, "email")) for o in spec.get("owners", [])),
        bento=_text(spec.get("model", {}), "bento"),
        image=_image(body),
        replicas=int(spec.get("replicas", DEFAULTS["replicas"])),
        score_path=_text(spec.get("prediction", {}), "scorePath"),
        threshold=_text(spec.get("prediction", {}), "threshold"),
        enforcement=_text(spec, "enforcement", str(DEFAULTS["enforcement"])),
        subgroups=parse_subgroups(spec.get("subgroups", {})),
        sources=tuple(_source(a) for a in spec.get("subgroups", {}).get("attributes", [])),
        slos=tuple(_slo(s) for s in spec.get("slos", [])),
        monitoring=Monitoring(
            interval=_text(evaluation, "interval", str(EVALUATION_DEFAULTS["interval"])),
            qualification_period=_text(
                evaluation, "qualificationPeriod", str(EVALUATION_DEFAULTS["qualificationPeriod"])
            ),
            cooldown=_text(evaluation, "cooldown", str(EVALUATION_DEFAULTS["cooldown"])),
            max_actions_per_day=int(
                evaluation.get("maxActionsPerDay", EVALUATION_DEFAULTS["maxActionsPerDay"])
            ),
        ),
        change_control=_change_control(spec.get("changeControl")),
        latest_approval=read_approval(meta),
    )


def _source(raw: Mapping[str, Any]) -> AttributeSource:
    source = raw.get("source", {})
    kind = next((k for k in ("context", "field", "header") if k in source), "")
    return AttributeSource(_text(raw, "name"), f"{kind} {source.get(kind, '')}".strip())


def _slo(raw: Mapping[str, Any]) -> SloSpec:
    return SloSpec(
        name=_text(raw, "name"),
        metric=_text(raw, "metric"),
        attribute=_text(raw, "attribute"),
        comparison=_text(raw, "comparison"),
        reference=_text(raw, "reference"),
        threshold=_text(raw, "threshold"),
        window=_text(raw, "window", str(SLO_DEFAULTS["window"])),
        min_samples=int(raw.get("minSamples", SLO_DEFAULTS["minSamples"])),
        confidence=_text(raw, "confidence", str(SLO_DEFAULTS["confidence"])),
        consecutive_breaches=int(
            raw.get("consecutiveBreaches", SLO_DEFAULTS["consecutiveBreaches"])
        ),
        action=_text(raw, "action", str(SLO_DEFAULTS["action"])),
    )


def _change_control(raw: Mapping[str, Any] | None) -> ChangeControl | None:
    if not raw:
        return None
    acceptance = raw.get("acceptance", {})
    limit = raw.get("maxRecalibrations", {})
    return ChangeControl(
        methods=tuple(str(m) for m in raw.get("methods", [])),
        window=_text(raw, "window", str(change_control.DEFAULTS["window"])),
        min_outcomes_per_group=int(
            raw.get("minOutcomesPerGroup", change_control.DEFAULTS["minOutcomesPerGroup"])
        ),
        approval_required=bool(
            raw.get("approvalRequired", change_control.DEFAULTS["approvalRequired"])
        ),
        max_recalibrations=int(limit.get("count", change_control.PACING_DEFAULTS["count"])),
        recalibration_period=_text(limit, "period", str(change_control.PACING_DEFAULTS["period"])),
        acceptance=tuple((str(k), str(v)) for k, v in sorted(acceptance.items())),
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
    )
