"""A recalibration's change record in the structure of a predetermined change
control plan (FDA, "Marketing Submission Recommendations for a Predetermined
Change Control Plan for Artificial Intelligence-Enabled Device Software
Functions", final guidance, December 2024): description of modifications,
modification protocol (data management, re-training, performance evaluation,
update procedures), impact assessment, and version control and labelling.

Every figure comes from what was recorded: the Job's result and impact
assessment (contracts.recalibration_result, already free of counts 1-10), the
EquityDecisions of the change (contracts.records) and the ClinicalModel. What
nothing recorded is named as the owner's to add, never filled in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from equiguard.contracts.recalibration_result import RecalibrationResult
from equiguard.contracts.records import StoredDecision
from equiguard.contracts.status import format_time

FORMAT = "equiguard.change-record/v1"
GUIDANCE = (
    "FDA, Marketing Submission Recommendations for a Predetermined Change Control Plan "
    "for Artificial Intelligence-Enabled Device Software Functions, final guidance, "
    "December 2024"
)
# The metrics the impact assessment compares per group, before and after.
IMPACT_METRICS = (
    "tpr",
    "fpr",
    "ppv",
    "netBenefit",
    "calibrationSlope",
    "calibrationIntercept",
    "observedExpectedRatio",
    "ece",
    "brier",
    "auroc",
)
OWNER_MUST_ADD = "not recorded by equiguard: the owner must add it"


class ChangeRecordError(ValueError):
    """The change cannot be documented from what was recorded; the message says why."""


def change_record(
    model: Mapping[str, Any],
    job: str,
    result: RecalibrationResult,
    decisions: Sequence[StoredDecision],
) -> dict[str, Any]:
    """The change record of the recalibration Job `job`, format equiguard.change-record/v1."""
    try:
        assessment = json.loads(result.assessment)
    except ValueError:
        raise ChangeRecordError(f"the result of {job} holds no readable assessment") from None
    if not isinstance(assessment, Mapping) or assessment.get("format") is None:
        raise ChangeRecordError(f"the result of {job} holds no impact assessment")
    spec = model.get("spec", {})
    candidate = result.candidate_revision
    related = [d for d in decisions if _belongs(d, job, candidate)]
    related.sort(key=lambda d: d.time)
    chosen = _chosen(assessment)
    promotion = next((d for d in related if d.decision == "Promote"), None)
    return {
        "format": FORMAT,
        "structure": GUIDANCE,
        "model": {
            "name": model.get("metadata", {}).get("name", ""),
            "namespace": model.get("metadata", {}).get("namespace", ""),
            "uid": model.get("metadata", {}).get("uid", ""),
        },
        "change": {
            "name": job,
            "time": assessment.get("time"),
            "outcome": result.outcome,
            "reason": result.reason,
            "message": result.message,
        },
        "descriptionOfModifications": _description(result, assessment, chosen, related),
        "modificationProtocol": {
            "dataManagement": _data_management(spec, assessment),
            "retraining": _retraining(assessment),
            "performanceEvaluation": _performance(assessment, chosen),
            "updateProcedures": _update_procedures(assessment, promotion, related),
        },
        "impactAssessment": _impact(assessment, chosen),
        "versionControlAndLabelling": _versions(spec, result, chosen, promotion, related),
    }


def _belongs(decision: StoredDecision, job: str, candidate: str) -> bool:
    if decision.job == job:
        return True
    return bool(candidate) and candidate in (decision.revision, decision.target_revision)


def _chosen(assessment: Mapping[str, Any]) -> Mapping[str, Any]:
    """The candidate that held (the one published), else the last one tried."""
    candidates = [c for c in assessment.get("candidates", []) if isinstance(c, Mapping)]
    return next((c for c in candidates if c.get("held")), candidates[-1] if candidates else {})


def _description(
    result: RecalibrationResult,
    assessment: Mapping[str, Any],
    chosen: Mapping[str, Any],
    related: Sequence[StoredDecision],
) -> dict[str, Any]:
    trigger = next((d for d in related if d.decision == "Recalibrate"), None)
    fit = chosen.get("fit") or {}
    return {
        "kind": "recalibration",
        "method": result.method or chosen.get("method"),
        "dimension": result.dimension or assessment.get("trigger", {}).get("dimension"),
        "trigger": {
            "slo": result.slo or assessment.get("trigger", {}).get("slo"),
            "record": None if trigger is None else trigger.name,
            "reason": None if trigger is None else trigger.reason,
            "message": None if trigger is None else trigger.message,
        },
        "revisionBefore": result.serving_revision,
        "revisionAfter": result.candidate_revision or None,
        "groups": [
            {
                "group": g.get("group"),
                "changed": g.get("changed"),
                "detail": g.get("detail") or g.get("reason"),
            }
            for g in fit.get("groups", [])
        ],
        "calibration": chosen.get("calibration"),
    }


def _data_management(spec: Mapping[str, Any], assessment: Mapping[str, Any]) -> dict[str, Any]:
    dimension = assessment.get("trigger", {}).get("dimension")
    before = (assessment.get("before") or {}).get("metrics", {})
    counts = [
        {
            "group": group,
            "n": block.get("n"),
            "positives": block.get("positives"),
            "negatives": block.get("negatives"),
        }
        for group, block in before.get(dimension, {}).items()
    ]
    store = (spec.get("outcomes") or {}).get("store") or {}
    return {
        "store": store.get("type", "sqlite"),
        "window": assessment.get("window"),
        "outcomes": assessment.get("outcomes"),
        "countsPerGroup": counts,
        "countsNote": "counts from 1 to 10 are withheld (null), and so are counts they follow from",
    }


def _retraining(assessment: Mapping[str, Any]) -> dict[str, Any]:
    envelope = assessment.get("envelope") or {}
    return {
        "methodsAllowed": envelope.get("methods", []),
        "methodsTried": [
            {
                "method": c.get("method"),
                "held": c.get("held"),
                "reason": (c.get("fit") or {}).get("reason"),
            }
            for c in assessment.get("candidates", [])
        ],
        "envelope": envelope,
    }


def _performance(assessment: Mapping[str, Any], chosen: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "population": "the intended-use population, per declared subgroup, on held-out outcomes",
        "heldOutFrom": (assessment.get("window") or {}).get("holdoutStart"),
        "acceptanceCriteria": [
            {
                "name": c.get("name"),
                "limit": c.get("limit"),
                "held": c.get("held"),
                "message": c.get("message"),
                "checks": c.get("checks", []),
            }
            for c in chosen.get("criteria", [])
        ],
        "notJudged": chosen.get("notJudged", []),
        "allHeld": chosen.get("held"),
    }


def _update_procedures(
    assessment: Mapping[str, Any],
    promotion: StoredDecision | None,
    related: Sequence[StoredDecision],
) -> dict[str, Any]:
    envelope = assessment.get("envelope") or {}
    approval = None if promotion is None else promotion.approval
    return {
        "approvalRequired": envelope.get("approvalRequired"),
        "approval": None
        if approval is None
        else {
            "revision": approval.revision,
            "by": approval.by,
            "reason": approval.reason,
            "time": approval.time,
        },
        "promoted": None if promotion is None else format_time(promotion.time),
        "procedure": "the candidate is published as a new bento, promoted only when every "
        "acceptance criterion held (and after a recorded approval where required), and rolled "
        "back to the last good revision when an equity SLO is violated",
        "records": [
            {
                "name": d.name,
                "decision": d.decision,
                "reason": d.reason,
                "time": format_time(d.time),
                "revision": d.revision,
                "targetRevision": d.target_revision,
            }
            for d in related
        ],
    }


def _impact(assessment: Mapping[str, Any], chosen: Mapping[str, Any]) -> dict[str, Any]:
    dimension = assessment.get("trigger", {}).get("dimension")
    before = assessment.get("before") or {}
    after = chosen.get("after") or {}
    groups_before = before.get("metrics", {}).get(dimension, {})
    groups_after = after.get("metrics", {}).get(dimension, {})
    groups = []
    for group in groups_before:
        was, now = groups_before.get(group, {}), groups_after.get(group, {})
        groups.append(
            {
                "group": group,
                "metrics": {
                    m: {
                        "before": was.get(m),
                        "after": now.get(m),
                        "intervalBefore": (was.get("intervals") or {}).get(m),
                        "intervalAfter": (now.get("intervals") or {}).get(m),
                    }
                    for m in IMPACT_METRICS
                },
            }
        )
    slos_before, slos_after = before.get("slos", {}), after.get("slos", {})
    return {
        "dimension": dimension,
        "groups": groups,
        "slos": [
            {
                "name": name,
                "before": (slos_before.get(name) or {}).get("verdict"),
                "after": (slos_after.get(name) or {}).get("verdict"),
            }
            for name in dict.fromkeys([*slos_before, *slos_after])
        ],
    }


def _versions(
    spec: Mapping[str, Any],
    result: RecalibrationResult,
    chosen: Mapping[str, Any],
    promotion: StoredDecision | None,
    related: Sequence[StoredDecision],
) -> dict[str, Any]:
    limitations = [
        f"not judged for lack of outcomes: {'/'.join(map(str, cell))}"
        for cell in chosen.get("notJudged", [])
    ]
    for name, entry in ((chosen.get("after") or {}).get("slos") or {}).items():
        if entry.get("verdict") == "Inconclusive":
            limitations.append(f"SLO {name} is not yet demonstrated on the candidate")
    return {
        "revisionBefore": result.serving_revision,
        "revisionAfter": result.candidate_revision or None,
        "serving": None if promotion is None else promotion.target_revision,
        "recordNames": [d.name for d in related],
        "labelling": {
            "intendedUse": spec.get("intendedUse") or OWNER_MUST_ADD,
            "knownLimitations": limitations,
            "userFacingChange": OWNER_MUST_ADD,
        },
    }
