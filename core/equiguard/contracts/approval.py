"""The approval contract: a human's approval of a candidate revision.

It is recorded on the ClinicalModel as the annotation `equiguard.io/approval`,
a JSON object {"revision", "by", "reason", "time"}: `equiguard approve` writes
it (`approval_patch`), the operator and the report read it (`read_approval`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from equiguard.contracts.names import GROUP

APPROVAL_ANNOTATION = f"{GROUP}/approval"
API_VERSION = f"{GROUP}/v1alpha1"
# The CRD's pattern for spec.model.bento, so an approval can only name a tag a spec could.
_BENTO_TAG = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?:[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_NAME, _MAX_REASON = 200, 1000


class ApprovalError(ValueError):
    """An approval that cannot be recorded; the message says why."""


@dataclass(frozen=True)
class Approval:
    revision: str
    by: str
    reason: str
    time: str  # RFC 3339, UTC

    def to_annotation(self) -> str:
        return json.dumps(
            {"revision": self.revision, "by": self.by, "reason": self.reason, "time": self.time},
            separators=(",", ":"),
            ensure_ascii=False,
        )


def build_approval(revision: str, by: str, reason: str, now: datetime) -> Approval:
    """A valid approval, or ApprovalError naming what is wrong."""
    if not _BENTO_TAG.match(revision):
        raise ApprovalError(f"{revision!r} is not a bento tag such as readmission:v1-recal-0a1b2c")
    by, reason = by.strip(), " ".join(reason.split())
    if not by or len(by) > _MAX_NAME:
        raise ApprovalError(f"--by must name the approver in 1 to {_MAX_NAME} characters")
    if not reason or len(reason) > _MAX_REASON:
        raise ApprovalError(f"--reason must give the reason in 1 to {_MAX_REASON} characters")
    return Approval(revision, by, reason, now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def read_approval(metadata: Mapping[str, Any]) -> Approval | None:
    """The approval recorded on a ClinicalModel's metadata, or None (also when malformed)."""
    text = (metadata.get("annotations") or {}).get(APPROVAL_ANNOTATION)
    if not text:
        return None
    try:
        data = json.loads(text)
        return Approval(str(data["revision"]), str(data["by"]), str(data["reason"]),
                        str(data["time"]))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


def approval_patch(name: str, namespace: str, approval: Approval) -> dict[str, Any]:
    """The server-side apply body that records `approval` on the model."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ClinicalModel",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {APPROVAL_ANNOTATION: approval.to_annotation()},
        },
    }
