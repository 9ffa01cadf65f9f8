"""Each contract reads back what it writes."""

from __future__ import annotations

from datetime import UTC, datetime

from equiguard.contracts.approval import approval_patch, build_approval, read_approval
from equiguard.contracts.rows import decode_groups, encode_groups
from equiguard.contracts.status import (
    ActionEntry,
    Condition,
    PriorStatus,
    RevisionRecord,
    SloStatus,
)
from equiguard.engine.verdict import Verdict

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_an_slo_status_keeps_its_numbers_as_numbers_through_status() -> None:
    status = SloStatus(
        name="tpr-gap-race", verdict=Verdict.VIOLATED, reason="ThresholdExceeded",
        message="m", since=T0, revision="readmission:v2", breaches=2, worst_group="Black",
        estimate=0.18, lower=0.12, upper=0.24, held_back="CooldownActive",
        state={"consecutiveBreaches": 2}, outcomes_needed=None,
    )  # fmt: skip
    written = status.write()
    numbers = (written["estimate"], written["lower"], written["upper"])
    assert numbers == ("0.1800", "0.1200", "0.2400")
    assert SloStatus.read(written) == status


def test_a_status_reads_back_what_the_operator_writes() -> None:
    prior = PriorStatus(
        serving="readmission:v2",
        revisions=(
            RevisionRecord("readmission:v1", "img:1", 1, T0, T0, met_since=T0, qualified_at=T0),
            RevisionRecord("readmission:v2", "img:2", 2, T0, T0, evaluations=3, violations=1),
        ),
        actions=(ActionEntry(T0, "Rollback", "tpr-gap-race", "readmission:v2", False, "r"),),
        slos=(SloStatus("tpr-gap-race", Verdict.MET, "WithinThreshold", "m", T0, "v2",
                        estimate=0.04),),
        conditions=(Condition("Ready", "True", "Available", "ok", T0, 2),),
        last_action="Rollback",
    )  # fmt: skip
    written = {
        "servingRevision": prior.serving,
        "revisions": [r.write() for r in prior.revisions],
        "actions": [a.write() for a in prior.actions],
        "slos": [s.write() for s in prior.slos],
        "conditions": [c.write() for c in prior.conditions],
        "lastAction": prior.last_action,
    }
    assert PriorStatus.read(written) == prior


def test_an_approval_reads_back_from_the_annotation_it_writes() -> None:
    approval = build_approval("readmission:v1-recal-0a1b2c", " Dr. Okafor ", "panel  agreed", T0)
    patch = approval_patch("readmission", "clinic", approval)
    assert read_approval(patch["metadata"]) == approval
    assert (approval.by, approval.reason, approval.time) == (
        "Dr. Okafor", "panel agreed", "2026-03-01T12:00:00Z",
    )  # fmt: skip


def test_a_rows_groups_read_back_whatever_their_order() -> None:
    groups = {"race": "Black", "age_band": "65+", "payer": "unknown"}
    encoded = encode_groups(groups)
    assert encoded == encode_groups(dict(reversed(groups.items())))
    assert dict(decode_groups(encoded)) == groups
