"""Each contract reads back what it writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml
from equiguard.contracts import names, records, sidecar_config, stats_exchange
from equiguard.contracts.approval import Approval, approval_patch, build_approval, read_approval
from equiguard.contracts.model import read_model
from equiguard.contracts.recalibration_result import (
    Criterion,
    RecalibrationResult,
    configmap,
    result_name,
)
from equiguard.contracts.records import DecisionRecord, Evidence, GroupPoint, build_decision
from equiguard.contracts.rows import decode_groups, encode_groups
from equiguard.contracts.status import (
    ActionEntry,
    Condition,
    PriorStatus,
    RevisionRecord,
    SloStatus,
)
from equiguard.engine.spec import Attribute, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.verdict import Verdict

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


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


def test_a_decision_record_reads_back_what_the_operator_writes() -> None:
    model = read_model({
        "metadata": {"name": "readmission", "namespace": "clinic", "uid": "u-1",
                     "generation": 4},
        "spec": {"model": {"bento": "readmission:v2"}, "enforcement": "DryRun", "slos": []},
    })  # fmt: skip
    record = DecisionRecord(
        decision="Rollback", reason="DryRunRollback", message="would roll back",
        identity=("tpr-gap-race", "readmission:v2"), slo="tpr-gap-race",
        verdict="Violated", previous_verdict="Inconclusive", revision="readmission:v2",
        target_revision="readmission:v1", dry_run=True,
        evidence={"metric": "tpr", "attribute": "race", "window": "7d",
                  "confidence": "0.950000", "threshold": "0.1", "worstGroup": "Black vs White",
                  "estimate": "0.3700", "lower": "0.2200", "upper": "0.5000",
                  "groups": [{"group": "Black", "suppressed": False, "estimate": "0.4100",
                              "n": 167},
                             {"group": "Other", "suppressed": True}]},
        approval={"revision": "readmission:v1", "by": "panel", "reason": "agreed",
                  "time": "2026-03-01T12:00:00Z"},
    )  # fmt: skip
    body = build_decision(model, record, T0)
    stored = records.read(body)
    assert stored == records.StoredDecision(
        name=records.record_name(model, record), model="readmission", model_uid="u-1",
        time=T0, decision="Rollback", reason="DryRunRollback", message="would roll back",
        slo="tpr-gap-race", verdict="Violated", previous_verdict="Inconclusive",
        revision="readmission:v2", target_revision="readmission:v1", job="", dry_run=True,
        enforcement="DryRun", generation=4,
        evidence=Evidence("tpr", "race", "7d", "0.950000", "0.1", "Black vs White",
                          0.37, 0.22, 0.5,
                          (GroupPoint("Black", 0.41, None, None, 167, False),
                           GroupPoint("Other", None, None, None, None, True))),
        approval=Approval("readmission:v1", "panel", "agreed", "2026-03-01T12:00:00Z"),
    )  # fmt: skip


def test_a_decision_record_without_evidence_or_approval_reads_them_as_none() -> None:
    model = read_model({"metadata": {"name": "m", "namespace": "n"},
                        "spec": {"model": {"bento": "m:v1"}, "slos": []}})  # fmt: skip
    record = DecisionRecord("Qualified", "RevisionQualified", "ok", ("m:v1",), revision="m:v1")
    stored = records.read(build_decision(model, record, T0))
    assert (stored.evidence, stored.approval, stored.enforcement) == (None, None, "Enforce")


def test_a_recalibration_result_reads_back_from_the_configmap_the_job_writes() -> None:
    assessment = {"candidates": [
        {"method": "isotonic", "held": False, "criteria": [{"name": "allSLOsMet", "held": False}]},
        {"method": "platt", "held": True,
         "criteria": [{"name": "allSLOsMet", "held": True, "message": "met", "checks": [1]}]},
    ]}  # fmt: skip
    result = RecalibrationResult(
        outcome="Published", reason="CriteriaMet", message="every criterion held",
        serving_revision="readmission:v2", candidate_revision="readmission:v2-recal-0a1b2c",
        method="platt", dimension="race", slo="tpr-gap-race",
        assessment=json.dumps(assessment), summary="# Recalibration",
    )  # fmt: skip
    body = configmap(result_name("job-1"), "readmission", result, "job-1", "uid-1")
    assert body["metadata"]["name"] == "job-1-result"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert all(isinstance(value, str) for value in body["data"].values())
    assert RecalibrationResult.read(body["data"]) == result
    assert result.published_criteria() == (Criterion("allSLOsMet", True, "met"),)


def test_a_refused_result_without_an_assessment_has_no_criteria() -> None:
    refused = RecalibrationResult.read({"outcome": "Refused", "reason": "CriteriaNotMet"})
    assert (refused.outcome, refused.candidate_revision, refused.published_criteria()) == (
        "Refused", "", ())


def test_the_sidecar_reads_the_configuration_the_operator_writes() -> None:
    body = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
    body["metadata"]["namespace"] = "clinic"
    model = read_model(body)
    text = sidecar_config.write_template(model)
    rendered = text.replace(sidecar_config.POD_IP_PLACEHOLDER, "127.1.0.7").replace(
        sidecar_config.REVISION_PLACEHOLDER, "readmission:v1"
    )
    config = sidecar_config.parse_config(yaml.safe_load(rendered))
    assert (config.model_name, config.namespace, config.revision) == (
        model.name, "clinic", "readmission:v1")
    assert (config.host, config.port) == ("127.1.0.7", names.SIDECAR_PORT)
    assert config.upstream == f"http://127.1.0.7:{names.MODEL_PORT}"
    assert (config.token_env, config.token_file) == (sidecar_config.TOKEN_ENV, "")
    assert (config.store.kind, config.store.path) == ("sqlite", sidecar_config.SQLITE_FILE)
    assert [slo.name for slo in config.spec.slos] == [s["name"] for s in body["spec"]["slos"]]
    assert [a.name for a in config.attributes] == [
        a["name"] for a in body["spec"]["subgroups"]["attributes"]]


def test_a_postgresql_store_reaches_the_sidecar_as_its_dsn_variable() -> None:
    body = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
    body["metadata"]["namespace"] = "clinic"
    body["spec"]["outcomes"]["store"] = {"type": "postgresql", "dsnSecret": {"name": "db"}}
    document = sidecar_config.template(read_model(body))
    document["sidecar"]["host"] = "127.0.0.1"
    document["sidecar"]["upstream"] = "http://127.0.0.1:3000"
    store = sidecar_config.parse_config(document).store
    assert (store.kind, store.dsn_env, store.dsn_file) == ("postgresql", sidecar_config.DSN_ENV, "")


def test_the_operator_reads_back_the_statistics_a_sidecar_answers() -> None:
    layout = CellLayout.from_spec(Subgroups((Attribute("race", ("A", "B")),), ()))
    rng = np.random.default_rng(7)
    rows = 40
    statistics = Statistics.empty(layout.cells, 0.5)
    race = np.array(["A", "B", None], dtype=object)[rng.integers(0, 3, rows)]
    statistics.update(layout.assign({"race": race}, rows), rng.random(rows),
                      rng.integers(0, 2, rows))  # fmt: skip
    question = stats_exchange.query(3600.2, "readmission:v2")
    assert question == {"window": "3601s", "revision": "readmission:v2"}
    assert stats_exchange.requested_revision(question, "readmission:v1") == "readmission:v2"
    assert stats_exchange.requested_revision({}, "readmission:v1") == "readmission:v1"
    body, headers = stats_exchange.answer(statistics, "readmission:v2", 3601.0)
    assert headers[stats_exchange.REVISION_HEADER] == "readmission:v2"
    assert stats_exchange.read_answer(json.loads(json.dumps(body))).to_dict() == body
