"""The ClinicalModel contract: its identity and the settings the operator acts on.

The API server has already validated the spec against the CRD's schema and CEL
rules and filled in its defaults, so this module only converts: durations to
seconds, decimal strings stay strings (they are passed on, not computed with).
Subgroup and SLO semantics belong to the equity engine (`engine.spec`) and the
change-control envelope to `contracts.change_control`, which read the same
spec mapping. Every default is written once, beside its reader, and equals the
CRD's (tests/unit/test_contracts_crd.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from equiguard.contracts import change_control, early_warning
from equiguard.contracts.early_warning import EarlyWarning
from equiguard.engine.spec import SLO_DEFAULTS, parse_duration

ENFORCEMENTS: tuple[str, ...] = ("Enforce", "DryRun")
DEFAULTS: Mapping[str, str | int] = {"replicas": 1, "enforcement": "Enforce"}
EVALUATION_DEFAULTS: Mapping[str, str | int] = {
    "interval": "1m",
    "qualificationPeriod": "1h",
    "cooldown": "1h",
    "maxActionsPerDay": 3,
}


_PACING = change_control.PACING_DEFAULTS


def _setting(evaluation: Mapping[str, Any], key: str) -> Any:
    return evaluation.get(key, EVALUATION_DEFAULTS[key])


def _seconds(text: str) -> int:
    """Whole seconds in a duration string such as ``30m`` or ``7d``."""
    return int(parse_duration(text))


@dataclass(frozen=True)
class SloAction:
    """One SLO as declared (numbers as written) and what it does when confirmed Violated."""

    name: str
    action: str  # Alert | Rollback | Recalibrate
    metric: str
    attribute: str
    comparison: str
    threshold: str
    window: str
    reference: str = ""
    min_samples: int = int(SLO_DEFAULTS["minSamples"])
    confidence: str = str(SLO_DEFAULTS["confidence"])
    consecutive_breaches: int = int(SLO_DEFAULTS["consecutiveBreaches"])


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
    # spec.evaluation as written, defaults filled in (durations as strings such as "1h").
    evaluation: Mapping[str, str | int] = field(default_factory=dict)
    early_warning: EarlyWarning | None = None  # spec.earlyWarning; None when not declared

    @property
    def recalibrates(self) -> bool:
        """Whether the model declares a change-control envelope for recalibrations."""
        return "changeControl" in self.spec

    @property
    def approval_required(self) -> bool:
        control = self.spec.get("changeControl", {})
        return bool(control.get("approvalRequired", change_control.DEFAULTS["approvalRequired"]))

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
        replicas=int(spec.get("replicas", DEFAULTS["replicas"])),
        enforcement=spec.get("enforcement", DEFAULTS["enforcement"]),
        slos=tuple(
            SloAction(
                name=slo["name"],
                action=slo.get("action", SLO_DEFAULTS["action"]),
                metric=slo["metric"],
                attribute=slo["attribute"],
                comparison=slo["comparison"],
                threshold=str(slo["threshold"]),
                window=slo.get("window", SLO_DEFAULTS["window"]),
                reference=str(slo.get("reference", "")),
                min_samples=int(slo.get("minSamples", SLO_DEFAULTS["minSamples"])),
                confidence=str(slo.get("confidence", SLO_DEFAULTS["confidence"])),
                consecutive_breaches=int(
                    slo.get("consecutiveBreaches", SLO_DEFAULTS["consecutiveBreaches"])
                ),
            )
            for slo in spec["slos"]
        ),
        pacing=Pacing(
            interval=_seconds(_setting(evaluation, "interval")),
            qualification_period=_seconds(_setting(evaluation, "qualificationPeriod")),
            cooldown=_seconds(_setting(evaluation, "cooldown")),
            max_actions_per_day=int(_setting(evaluation, "maxActionsPerDay")),
            max_recalibrations=int(recalibrations.get("count", _PACING["count"])),
            recalibration_period=_seconds(str(recalibrations.get("period", _PACING["period"]))),
        ),
        keep_records=bool(spec.get("decisionRecords", {}).get("keepOnDelete", False)),
        spec=spec,
        evaluation={key: _setting(evaluation, key) for key in EVALUATION_DEFAULTS},
        early_warning=early_warning.read(spec),
    )
