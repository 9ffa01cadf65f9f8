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
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from equiguard.contracts.approval import (
    API_VERSION,
    ApprovalError,
    approval_patch,
    build_approval,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
    from equiguard.kube import Kube, Rejected, Transient, config

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
