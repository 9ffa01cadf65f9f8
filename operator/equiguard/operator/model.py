"""The parts of a ClinicalModel the operator acts on, read from its raw body.

The API server has already validated the spec against the CRD's schema and CEL
rules and filled in its defaults, so this module only converts: durations to
seconds, decimal strings stay strings (they are passed on, not computed with).
Subgroup and SLO semantics belong to the equity engine, which reads the same
spec mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.engine.spec import parse_duration


def _seconds(text: str) -> int:
    """Whole seconds in a duration string such as ``30m`` or ``7d``."""
    return int(parse_duration(text))


@dataclass(frozen=True)
class SloAction:
    """What one SLO does when it is confirmed Violated."""

    name: str
    action: str  # Alert | Rollback | Recalibrate
    metric: str
    attribute: str
    comparison: str
    threshold: str
    window: str


@dataclass(frozen=True)
class Pacing:
    """How often the operator evaluates, and how actions are spaced."""

    interval: int
    qualification_period: int
    cooldown: int
    max_actions_per_day: int
    max_recalibrations: int
    recalibration_period: int


@dataclass(frozen=True)
class ClinicalModel:
    """The identity and the operator-facing settings of one ClinicalModel."""

    name: str
    namespace: str
    uid: str
    generation: int
    bento: str
    image: str  # spec.model.image; "" when absent (the operator's --model-image serves it)
    replicas: int
    enforcement: str  # Enforce | DryRun
    slos: tuple[SloAction, ...]
    pacing: Pacing
    keep_records: bool
    spec: Mapping[str, Any]

    @property
    def recalibrates(self) -> bool:
        """Whether the model declares a change-control envelope for recalibrations."""
        return "changeControl" in self.spec

    @property
    def approval_required(self) -> bool:
        return bool(self.spec.get("changeControl", {}).get("approvalRequired", True))

    @property
    def dry_run(self) -> bool:
        return self.enforcement == "DryRun"


def read_model(body: Mapping[str, Any]) -> ClinicalModel:
    """Reads a ClinicalModel body (as the API server returns it, defaults applied)."""
    meta = body["metadata"]
    spec = body["spec"]
    evaluation = spec.get("evaluation", {})
    recalibrations = spec.get("changeControl", {}).get("maxRecalibrations", {})
    return ClinicalModel(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation", 0)),
        bento=spec["model"]["bento"],
        image=spec["model"].get("image", ""),
        replicas=int(spec.get("replicas", 1)),
        enforcement=spec.get("enforcement", "Enforce"),
        slos=tuple(
            SloAction(
                name=slo["name"],
                action=slo.get("action", "Alert"),
                metric=slo["metric"],
                attribute=slo["attribute"],
                comparison=slo["comparison"],
                threshold=slo["threshold"],
                window=slo.get("window", "7d"),
            )
            for slo in spec["slos"]
        ),
        pacing=Pacing(
            interval=_seconds(evaluation.get("interval", "1m")),
            qualification_period=_seconds(evaluation.get("qualificationPeriod", "1h")),
            cooldown=_seconds(evaluation.get("cooldown", "1h")),
            max_actions_per_day=int(evaluation.get("maxActionsPerDay", 3)),
            max_recalibrations=int(recalibrations.get("count", 1)),
            recalibration_period=_seconds(recalibrations.get("period", "7d")),
        ),
        keep_records=bool(spec.get("decisionRecords", {}).get("keepOnDelete", False)),
        spec=spec,
    )
