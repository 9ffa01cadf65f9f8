"""`equiguard approve`: the approval it records, and what it refuses to record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from equiguard.contracts.approval import (
    APPROVAL_ANNOTATION,
    ApprovalError,
    approval_patch,
    build_approval,
    read_approval,
)
from equiguard.operator.approve import check_target

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=timezone(timedelta(hours=1)))


def test_an_approval_is_recorded_as_one_annotation_the_operator_reads_back() -> None:
    approval = build_approval(
        "readmission:v1-recal-0a1b2c3d4e", "  Panel chair ", "Equity panel\n review 2027-01", NOW
    )
    assert approval.time == "2027-01-15T08:30:00Z" and approval.by == "Panel chair"
    assert approval.reason == "Equity panel review 2027-01"
    body = approval_patch("readmission-risk", "clinical", approval)
    assert body["metadata"] == {
        "name": "readmission-risk",
        "namespace": "clinical",
        "annotations": {APPROVAL_ANNOTATION: approval.to_annotation()},
    }
    assert json.loads(approval.to_annotation()) == {
        "revision": "readmission:v1-recal-0a1b2c3d4e",
        "by": "Panel chair",
        "reason": "Equity panel review 2027-01",
        "time": "2027-01-15T08:30:00Z",
    }
    assert read_approval(body["metadata"]) == approval


@pytest.mark.parametrize(
    ("revision", "by", "reason", "message"),
    [
        ("readmission", "Ada", "ok", "is not a bento tag"),
        ("readmission:latest!", "Ada", "ok", "is not a bento tag"),
        ("readmission:v2", "  ", "ok", "--by must name the approver"),
        ("readmission:v2", "Ada", " \n ", "--reason must give the reason"),
        ("readmission:v2", "Ada", "x" * 1001, "--reason must give the reason"),
    ],
)
def test_an_approval_without_a_tag_an_approver_or_a_reason_is_refused(
    revision: str, by: str, reason: str, message: str
) -> None:
    with pytest.raises(ApprovalError, match=message):
        build_approval(revision, by, reason, datetime.now(UTC))


@pytest.mark.parametrize(
    "annotations",
    [None, {}, {APPROVAL_ANNOTATION: "{not json"}, {APPROVAL_ANNOTATION: '{"revision": "x"}'}],
)
def test_a_missing_or_malformed_approval_reads_as_none(annotations: dict[str, str] | None) -> None:
    assert read_approval({"annotations": annotations}) is None


def test_approving_a_missing_model_or_the_serving_revision_is_refused() -> None:
    assert "no ClinicalModel clinical/m" in check_target(None, "clinical/m", "m:v2")
    serving = {"status": {"servingRevision": "m:v2"}}
    assert "already serves" in check_target(serving, "clinical/m", "m:v2")
    assert check_target(serving, "clinical/m", "m:v2-recal-0a1b2c3d4e") == ""
