"""A ClinicalModel's life as the operator records it, for tests of `equiguard report`.

The readmission example serves v1, which qualifies; v2 arrives, breaks the TPR
gap by race and is rolled back; later the payer calibration SLO fails and a
recalibration Job starts. The decision records are built with the operator's
own `build_decision` and the status with its own status values, so their shape
is the operator's. Two race groups are small cells (7 and 9 patients with the
outcome): the operator's export marks them suppressed and gives no count.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from equiguard.contracts.model import read_model
from equiguard.contracts.records import DecisionRecord, build_decision
from equiguard.contracts.status import RevisionRecord, SloStatus, format_time

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
V1, V2 = "readmission:v1", "readmission:v2"
IMAGE = "ghcr.io/equiguard/model-runtime:0.1.0"
# Patients with the outcome per race group; Other and unknown are small cells.
RACE_POSITIVES = {"White": 412, "Black": 167, "Asian": 58, "Hispanic": 96, "Other": 7, "unknown": 9}


@dataclass(frozen=True)
class Story:
    model: dict[str, Any]  # the ClinicalModel body with its status
    decisions: list[dict[str, Any]]
    end: datetime


def manifest(name: str = "readmission-risk", namespace: str = "clinic") -> dict[str, Any]:
    """The example ClinicalModel with a recalibration envelope for the payer SLO."""
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"] = {"name": name, "namespace": namespace}
    spec = body["spec"]
    spec["slos"][1]["action"] = "Recalibrate"
    spec["changeControl"] = {"methods": ["platt", "isotonic"], "approvalRequired": True}
    return body


def _group(
    group: str, estimate: float, half_width: float, n: int, ceiling: float = 1.0
) -> dict[str, Any]:
    if 1 <= n <= 10:
        return {"group": group, "suppressed": True}
    if n == 0:
        return {"group": group, "suppressed": False, "n": 0}
    return {
        "group": group,
        "suppressed": False,
        "estimate": f"{estimate:.4f}",
        "lower": f"{max(estimate - half_width, 0):.4f}",
        "upper": f"{min(estimate + half_width, ceiling):.4f}",
        "n": n,
    }


def tpr_groups(tprs: Mapping[str, float], scale: float = 1.0) -> list[dict[str, Any]]:
    return [
        _group(g, tprs.get(g, 0.6), 0.9 / (n * scale) ** 0.5 if n else 0.0, int(n * scale))
        for g, n in RACE_POSITIVES.items()
    ]


def _evidence(
    slo: Mapping[str, Any],
    estimate: float,
    lower: float,
    upper: float,
    worst: str,
    groups: list[dict[str, Any]],
    breaches: int = 0,
) -> dict[str, Any]:
    evidence = {
        "metric": slo["metric"],
        "attribute": slo["attribute"],
        "comparison": slo["comparison"],
        "threshold": slo["threshold"],
        "confidence": "0.9833",
        "window": "604800s",
        "consecutiveBreaches": slo["consecutiveBreaches"],
        "breaches": breaches,
        "pods": 1,
        "worstGroup": worst,
        "estimate": f"{estimate:.4f}",
        "lower": f"{lower:.4f}",
        "upper": f"{upper:.4f}",
        "groups": groups,
    }
    if slo.get("reference"):
        evidence["reference"] = slo["reference"]
    return evidence


def story(
    name: str = "readmission-risk",
    namespace: str = "clinic",
    uid: str = "4b6f1c1e-0000-4000-8000-000000000001",
) -> Story:
    body = manifest(name, namespace)
    body["metadata"].update(uid=uid, generation=2, creationTimestamp=format_time(T0))
    model = read_model(body)
    tpr_slo, payer_slo, adi_slo = body["spec"]["slos"]
    decisions: list[dict[str, Any]] = []

    def record(at: timedelta, **fields: Any) -> None:
        decisions.append(build_decision(model, DecisionRecord(**fields), T0 + at))

    fair = {"White": 0.61, "Black": 0.60, "Asian": 0.58, "Hispanic": 0.63}
    unfair = {"White": 0.72, "Black": 0.35, "Asian": 0.66, "Hispanic": 0.64}

    def ratio(group: str, estimate: float, half_width: float, n: int) -> dict[str, Any]:
        return _group(group, estimate, half_width, n, ceiling=10.0)

    payer_groups = [
        ratio("Medicare", 1.02, 0.08, 940),
        ratio("Medicaid", 0.97, 0.1, 610),
        ratio("Commercial", 1.05, 0.09, 700),
        ratio("SelfPay", 0.91, 0.2, 120),
        ratio("unknown", 1.0, 0.0, 0),
    ]
    adi_groups = [_group(str(q), 0.6, 0.09, 150) for q in range(1, 6)]
    for at, slo, evidence in (
        (
            timedelta(hours=2),
            tpr_slo,
            _evidence(tpr_slo, 0.05, 0.0, 0.093, "Hispanic vs Asian", tpr_groups(fair, 0.5)),
        ),
        (
            timedelta(hours=2),
            payer_slo,
            _evidence(payer_slo, 0.89, 0.83, 0.96, "SelfPay", payer_groups),
        ),
        (timedelta(hours=3), adi_slo, _evidence(adi_slo, 0.58, 0.52, 0.64, "4", adi_groups)),
    ):
        record(
            at,
            decision="VerdictChanged",
            reason="SLOMet",
            slo=slo["name"],
            verdict="Met",
            previous_verdict="Inconclusive",
            revision=V1,
            evidence=evidence,
            message=f"SLO {slo['name']} is Met (was Inconclusive).",
            identity=(slo["name"], "Inconclusive", "Met", format_time(T0)),
        )
    record(
        timedelta(hours=3),
        decision="RevisionQualified",
        reason="RevisionQualified",
        revision=V1,
        identity=(V1,),
        message=f"Revision {V1} met all its SLOs for the qualification period.",
    )
    record(
        timedelta(hours=26),
        decision="VerdictChanged",
        reason="InsufficientSubgroupData",
        slo=tpr_slo["name"],
        verdict="Inconclusive",
        previous_verdict="Met",
        revision=V2,
        identity=(tpr_slo["name"], "Met", "Inconclusive"),
        message=f"SLO {tpr_slo['name']} is Inconclusive (was Met): too few outcomes yet.",
    )
    violated = _evidence(
        tpr_slo, 0.37, 0.22, 0.50, "Black vs White", tpr_groups(unfair), breaches=2
    )
    record(
        timedelta(hours=29),
        decision="VerdictChanged",
        reason="SLOViolated",
        slo=tpr_slo["name"],
        verdict="Violated",
        previous_verdict="Inconclusive",
        revision=V2,
        evidence=violated,
        identity=(tpr_slo["name"], "Inconclusive", "Violated"),
        message=f"SLO {tpr_slo['name']} is Violated (was Inconclusive): the largest tpr gap "
        "between race groups is 0.370 (Black vs White).",
    )
    record(
        timedelta(hours=29),
        decision="Rollback",
        reason="RollbackTriggered",
        slo=tpr_slo["name"],
        verdict="Violated",
        revision=V2,
        target_revision=V1,
        evidence=violated,
        identity=(tpr_slo["name"], V2, V1),
        message=f"SLO {tpr_slo['name']} is Violated on {V2}; rolled back to the last good "
        f"revision {V1}.",
    )
    record(
        timedelta(hours=31),
        decision="VerdictChanged",
        reason="SLOMet",
        slo=tpr_slo["name"],
        verdict="Met",
        previous_verdict="Violated",
        revision=V1,
        evidence=_evidence(tpr_slo, 0.04, 0.0, 0.088, "Asian vs Hispanic", tpr_groups(fair)),
        identity=(tpr_slo["name"], "Violated", "Met"),
        message=f"SLO {tpr_slo['name']} is Met (was Violated).",
    )
    miscalibrated = [
        ratio("Medicare", 1.03, 0.06, 1900),
        ratio("Medicaid", 0.95, 0.08, 1200),
        ratio("Commercial", 1.06, 0.07, 1400),
        ratio("SelfPay", 0.62, 0.12, 260),
        ratio("unknown", 1.0, 0.0, 0),
    ]
    payer_violated = _evidence(payer_slo, 0.61, 0.50, 0.74, "SelfPay", miscalibrated, 2)
    record(
        timedelta(hours=50),
        decision="VerdictChanged",
        reason="SLOViolated",
        slo=payer_slo["name"],
        verdict="Violated",
        previous_verdict="Met",
        revision=V1,
        evidence=payer_violated,
        identity=(payer_slo["name"], "Met", "Violated"),
        message=f"SLO {payer_slo['name']} is Violated (was Met): observedExpectedRatio of "
        "payer group SelfPay is 0.610 times overall.",
    )
    record(
        timedelta(hours=50),
        decision="Recalibrate",
        reason="RecalibrationJobCreated",
        slo=payer_slo["name"],
        verdict="Violated",
        revision=V1,
        job=f"{name}-recal-3f2a9c1d7e",
        evidence=payer_violated,
        identity=("recal",),
        message=f"SLO {payer_slo['name']} is Violated on {V1}; started recalibration Job "
        f"{name}-recal-3f2a9c1d7e within the change-control envelope.",
    )
    end = T0 + timedelta(hours=52)
    body["status"] = {
        "observedGeneration": 2,
        "servingRevision": V1,
        "desiredRevision": V2,
        "lastGoodRevision": V1,
        "sloSummary": "2/3",
        "worstGap": "0.61 (calibration-payer)",
        "lastAction": f"Recalibrate {V1} ({name}-recal-3f2a9c1d7e)",
        "lastEvaluationTime": format_time(end),
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": f"Revision {V1} is serving.",
                "lastTransitionTime": format_time(end),
                "observedGeneration": 2,
            },
            {
                "type": "SLOsMet",
                "status": "False",
                "reason": "SLOViolated",
                "message": "Violated: calibration-payer.",
                "lastTransitionTime": format_time(end),
                "observedGeneration": 2,
            },
        ],
        "slos": [
            SloStatus(
                tpr_slo["name"],
                "Met",
                "ThresholdMet",
                "The largest tpr gap is 0.045.",
                T0 + timedelta(hours=31),
                V1,
                worst_group="Asian vs Hispanic",
                estimate=0.045,
                lower=0.0,
                upper=0.091,
            ).write(),
            SloStatus(
                payer_slo["name"],
                "Violated",
                "ThresholdExceeded",
                "SelfPay is 0.640 times overall.",
                T0 + timedelta(hours=50),
                V1,
                breaches=4,
                worst_group="SelfPay",
                estimate=0.64,
                lower=0.52,
                upper=0.77,
            ).write(),
            SloStatus(
                adi_slo["name"],
                "Met",
                "ThresholdMet",
                "The lowest tpr is 0.570.",
                T0 + timedelta(hours=3),
                V1,
                worst_group="4",
                estimate=0.57,
                lower=0.51,
                upper=0.63,
            ).write(),
        ],
        "revisions": [
            RevisionRecord(
                V1,
                IMAGE,
                1,
                T0,
                end,
                met_since=None,
                qualified_at=T0 + timedelta(hours=3),
                evaluations=2940,
                violations=120,
            ).write(),
            RevisionRecord(
                V2,
                IMAGE,
                2,
                T0 + timedelta(hours=26),
                T0 + timedelta(hours=29),
                quarantined_at=T0 + timedelta(hours=29),
                quarantine_reason=f"SLO {tpr_slo['name']} was Violated; rolled back to {V1}.",
                evaluations=180,
                violations=2,
            ).write(),
        ],
        "actions": [],
    }
    for item in decisions:
        item["metadata"]["namespace"] = namespace
    return Story(model=body, decisions=decisions, end=end)


def without_status(body: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(body))
    out.pop("status", None)
    return out
