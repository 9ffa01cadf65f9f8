"""The recalibration result contract: what a Job decided, in the ConfigMap `<job>-result`.

The Job writes it (`RecalibrationResult.write`, `configmap`); the operator
reads it back (`RecalibrationResult.read`) to promote the candidate, wait for
an approval, or say why nothing was published. docs/recalibration.md lists its
keys. Every value is a string, as a ConfigMap's data must be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.contracts import names

COMPONENT = "recalibration-result"
ASSESSMENT_KEY, SUMMARY_KEY = "assessment.json", "summary.md"
OUTCOMES: tuple[str, ...] = ("Published", "Refused")


def result_name(job: str) -> str:
    """The ConfigMap a recalibration Job writes its result to."""
    return f"{job}-result"


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion of the published candidate, without its checks."""

    name: str
    held: bool
    message: str


@dataclass(frozen=True)
class RecalibrationResult:
    outcome: str  # Published | Refused
    reason: str
    message: str
    serving_revision: str
    candidate_revision: str = ""
    method: str = ""
    dimension: str = ""
    slo: str = ""
    assessment: str = "{}"  # the impact assessment, a JSON document
    summary: str = ""  # the assessment for people, Markdown

    def write(self) -> dict[str, str]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
            "servingRevision": self.serving_revision,
            "candidateRevision": self.candidate_revision,
            "method": self.method,
            "dimension": self.dimension,
            "slo": self.slo,
            ASSESSMENT_KEY: self.assessment,
            SUMMARY_KEY: self.summary,
        }

    @classmethod
    def read(cls, data: Mapping[str, str]) -> RecalibrationResult:
        """The result in a ConfigMap's data; missing keys read as empty."""
        return cls(
            outcome=data.get("outcome", ""),
            reason=data.get("reason", ""),
            message=data.get("message", ""),
            serving_revision=data.get("servingRevision", ""),
            candidate_revision=data.get("candidateRevision", ""),
            method=data.get("method", ""),
            dimension=data.get("dimension", ""),
            slo=data.get("slo", ""),
            assessment=data.get(ASSESSMENT_KEY, "{}"),
            summary=data.get(SUMMARY_KEY, ""),
        )

    def published_criteria(self) -> tuple[Criterion, ...]:
        """The criteria of the candidate that was published (the one that held), or of the
        method's candidate; the assessment lists every candidate tried."""
        try:
            candidates = json.loads(self.assessment).get("candidates", [])
        except (ValueError, AttributeError):
            return ()
        tried = [c for c in candidates if isinstance(c, dict)]
        chosen = next((c for c in tried if c.get("held")), None) or next(
            (c for c in tried if c.get("method") == self.method), {}
        )
        criteria = chosen.get("criteria", [])
        if not isinstance(criteria, list):
            return ()
        return tuple(
            Criterion(str(c.get("name", "")), bool(c.get("held")), str(c.get("message", "")))
            for c in criteria
            if isinstance(c, dict)
        )


def configmap(
    name: str,
    model: str,
    result: RecalibrationResult,
    job_name: str | None,
    job_uid: str | None,
    model_uid: str | None = None,
) -> dict[str, Any]:
    """The result ConfigMap, labelled with the model and owned by what is named of the
    Job and the ClinicalModel.

    With both owners the garbage collector removes it only once both are gone: the
    result, and the change record made from it (`equiguard pccp`), outlives the
    Job, and goes with the model.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            **names.common_labels(model, COMPONENT),
            names.REVISION_LABEL: names.revision_label(result.serving_revision),
        },
        "annotations": {names.REVISION_ANNOTATION: result.serving_revision},
    }
    owners = []
    if job_name and job_uid:
        owners.append({"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid})
    if model_uid:
        owners.append({
            "apiVersion": f"{names.GROUP}/v1alpha1", "kind": "ClinicalModel",
            "name": model, "uid": model_uid,
        })  # fmt: skip
    if owners:
        metadata["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": result.write()}
