"""`equiguard approve MODEL REVISION --by NAME --reason TEXT`: record a human approval.

A recalibrated revision that passed its acceptance criteria waits for an
approval when `spec.changeControl.approvalRequired` is true. The approval is
recorded on the ClinicalModel as the annotation `equiguard.io/approval`, a JSON
object {"revision", "by", "reason", "time"}; the operator promotes the
candidate whose tag equals `revision` and copies the approval into the
decision record of the promotion. A later approval replaces an earlier one;
the decision records keep every approval that was acted on.

Writing it needs `get` and `patch` on clinicalmodels in the model's namespace.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from equiguard.operator.names import GROUP

APPROVAL_ANNOTATION = f"{GROUP}/approval"
API_VERSION = f"{GROUP}/v1alpha1"
# The CRD's pattern for spec.model.bento, so an approval can only name a tag a spec could.
_BENTO_TAG = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?:[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_NAME, _MAX_REASON = 200, 1000
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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


def check_target(model: Mapping[str, Any] | None, name: str, revision: str) -> str:
    """Why the approval cannot apply to this model ("" when it can)."""
    if model is None:
        return f"there is no ClinicalModel {name}"
    if (model.get("status") or {}).get("servingRevision") == revision:
        return f"{revision} already serves {name}; there is nothing to approve"
    return ""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="equiguard approve",
        description="Record a human approval of a recalibrated revision, which the operator "
        "then promotes and keeps in the decision record.",
    )
    parser.add_argument("model", help="the ClinicalModel's name")
    parser.add_argument("revision", help="the candidate revision (bento tag) to approve")
    parser.add_argument("--by", required=True, help="who approves: a person's name or role")
    parser.add_argument(
        "--reason", required=True, help="why, in a sentence (no patient information)"
    )
    parser.add_argument("--namespace", "-n", default="default", help="the model's namespace")
    args = parser.parse_args(argv)
    try:
        approval = build_approval(args.revision, args.by, args.reason, datetime.now(UTC))
    except ApprovalError as error:
        print(f"equiguard approve: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Imported here: the Kubernetes client is slow to import and not needed for --help.
    from equiguard.operator.kube import Kube, Rejected, Transient, config

    try:
        kube = Kube.from_environment()
    except config.ConfigException as error:
        print(f"equiguard approve: no cluster to talk to: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        model = kube.get(API_VERSION, "ClinicalModel", args.namespace, args.model)
        problem = check_target(model, f"{args.namespace}/{args.model}", approval.revision)
        if problem:
            print(f"equiguard approve: {problem}", file=sys.stderr)
            return EXIT_FAILED
        kube.apply(approval_patch(args.model, args.namespace, approval))
    except (Rejected, Transient) as error:
        print(f"equiguard approve: the API server refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"recorded approval of {approval.revision} for {args.namespace}/{args.model} by "
        f"{approval.by} at {approval.time}; the operator promotes it when it is the candidate "
        "awaiting approval"
    )
    return EXIT_OK
