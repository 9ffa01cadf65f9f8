"""The API server refuses every bad ClinicalModel with a message naming the field.

Each case mutates the reference example and applies it with a server-side dry
run against the real kube-apiserver, so the CRD's schema, defaults and CEL
rules are what is tested (nothing is stored).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.kube import Kubectl

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())

Body = dict[str, Any]


def _attr(body: Body, name: str) -> Body:
    attribute: Body = next(a for a in body["spec"]["subgroups"]["attributes"] if a["name"] == name)
    return attribute


def _slo(body: Body, index: int = 0) -> Body:
    slo: Body = body["spec"]["slos"][index]
    return slo


def _set(path: str, value: Any) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        keys = path.split(".")
        target = body
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
        target[keys[-1]] = value

    return mutate


def _also(*mutations: Callable[[Body], None]) -> Callable[[Body], None]:
    def mutate(body: Body) -> None:
        for mutation in mutations:
            mutation(body)

    return mutate


BAD_SPECS: list[tuple[str, Callable[[Body], None], str]] = [
    (
        "a source with two kinds",
        lambda b: _attr(b, "race")["source"].update(header="X-Race"),
        "spec.subgroups.attributes[0].source: Invalid value: subgroups.attributes[].source "
        "must set exactly one of field, header or context",
    ),
    (
        "an attribute with both values and bins",
        lambda b: _attr(b, "race").update(bins={"edges": ["1"]}),
        "must set exactly one of values (a categorical attribute) or bins",
    ),
    (
        "an attribute with neither values nor bins",
        lambda b: _attr(b, "race").pop("values"),
        "must set exactly one of values (a categorical attribute) or bins",
    ),
    (
        "two attributes with one name",
        lambda b: _attr(b, "sex").update(name="race"),
        "spec.subgroups.attributes: Invalid value: subgroups.attributes[].name must be unique",
    ),
    (
        "an intersection of an undeclared attribute",
        _set("spec.subgroups.intersections.0.of", ["race", "religion"]),
        "subgroups.intersections[].of must list attributes declared in subgroups.attributes",
    ),
    (
        "an intersection named like an attribute",
        _set("spec.subgroups.intersections.0.name", "race"),
        "subgroups.intersections[].name must be unique and differ from every attribute name",
    ),
    (
        "bin edges out of order",
        lambda b: _attr(b, "age_band")["bins"].update(edges=["18", "65", "45", "80"]),
        "spec.subgroups.attributes[2].bins.edges: Invalid value: "
        "subgroups.attributes[].bins.edges must be strictly ascending numbers",
    ),
    (
        "a repeated bin edge",
        lambda b: _attr(b, "age_band")["bins"].update(edges=["18", "45", "45.0", "80"]),
        "bins.edges must be strictly ascending numbers",
    ),
    (
        "fewer bin labels than edges",
        lambda b: _attr(b, "age_band")["bins"].update(labels=["young", "old"]),
        "subgroups.attributes[].bins.labels must have one label per edge",
    ),
    (
        "an attribute named overall",
        lambda b: _attr(b, "payer").update(name="overall"),
        "subgroups.attributes[].name cannot be overall",
    ),
    (
        "a group named unknown",
        lambda b: _attr(b, "sex").update(values=["female", "male", "unknown"]),
        "cannot declare a group named unknown",
    ),
    (
        "an SLO over an undeclared attribute",
        _set("spec.slos.0.attribute", "religion"),
        "spec.slos: Invalid value: slos[].attribute must name an attribute declared",
    ),
    (
        "two SLOs with one name",
        _set("spec.slos.1.name", "tpr-gap-race"),
        "spec.slos: Invalid value: slos[].name must be unique; two SLOs share a name",
    ),
    (
        "gapToReference without a reference",
        _set("spec.slos.0.comparison", "gapToReference"),
        "spec.slos[0].reference: Required value: slos[].reference is required when comparison "
        "is gapToReference or ratioToReference",
    ),
    (
        "a reference on a maxGap SLO",
        _set("spec.slos.0.reference", "White"),
        "spec.slos[0].reference: Forbidden: slos[].reference is used only with gapToReference",
    ),
    (
        "a reference that is not a group of the attribute",
        _set("spec.slos.1.reference", "Martian"),
        "slos[].reference must be overall, best, or one of the groups of the SLO's attribute",
    ),
    (
        "a ratio threshold above 1",
        _set("spec.slos.1.threshold", "1.25"),
        "slos[].threshold of a ratioToReference SLO must be a ratio in (0, 1]",
    ),
    (
        "a gap threshold above 1",
        _set("spec.slos.0.threshold", "1.5"),
        "spec.slos[0].threshold: Invalid value: slos[].threshold must be at most 1",
    ),
    (
        "reference best for a calibration slope, which has no best direction",
        _also(
            _set("spec.slos.1.metric", "calibrationSlope"), _set("spec.slos.1.reference", "best")
        ),
        "slos[].reference cannot be best for calibrationIntercept or calibrationSlope",
    ),
    (
        "a threshold written as a number",
        _set("spec.slos.0.threshold", 0.1),
        'spec.slos[0].threshold: Invalid value: "number": spec.slos[0].threshold in body '
        "must be of type string",
    ),
    (
        "a threshold that is not a decimal",
        _set("spec.slos.0.threshold", "ten percent"),
        'spec.slos[0].threshold: Invalid value: "ten percent": spec.slos[0].threshold in body '
        "should match",
    ),
    (
        "a window that is not a duration",
        _set("spec.slos.0.window", "7 days"),
        "spec.slos[0].window in body should match",
    ),
    (
        "a window shorter than an hour",
        _set("spec.slos.0.window", "30m"),
        "slos[].window must be at least 1h",
    ),
    (
        "a confidence below one half",
        _set("spec.slos.0.confidence", "0.30"),
        'spec.slos[0].confidence: Invalid value: "0.30": slos[].confidence must be a decimal '
        "string in [0.50, 1)",
    ),
    (
        "minSamples that would expose small cells",
        _set("spec.slos.0.minSamples", 5),
        "spec.slos[0].minSamples: Invalid value: 5: spec.slos[0].minSamples in body should be "
        "greater than or equal to 11",
    ),
    (
        "an unknown metric",
        _set("spec.slos.0.metric", "accuracy"),
        'spec.slos[0].metric: Unsupported value: "accuracy"',
    ),
    (
        "an unknown action",
        _set("spec.slos.0.action", "Page"),
        'spec.slos[0].action: Unsupported value: "Page"',
    ),
    (
        "Recalibrate without a change-control envelope",
        _set("spec.slos.0.action", "Recalibrate"),
        "slos[].action Recalibrate needs spec.changeControl",
    ),
    (
        "a recalibration method outside the envelope vocabulary",
        _set("spec.changeControl", {"methods": ["retrain"]}),
        'spec.changeControl.methods[0]: Unsupported value: "retrain"',
    ),
    (
        "an unknown enforcement",
        _set("spec.enforcement", "Sometimes"),
        'spec.enforcement: Unsupported value: "Sometimes"',
    ),
    (
        "a bento tag without a version",
        _set("spec.model.bento", "readmission"),
        "spec.model.bento in body should match",
    ),
    (
        "the latest bento",
        _set("spec.model.bento", "readmission:latest"),
        "model.bento must name a fixed version (readmission:v1), not latest",
    ),
    (
        "a score path that is not a JSON path",
        _set("spec.prediction.scorePath", "risk"),
        "spec.prediction.scorePath in body should match",
    ),
    (
        "a decision threshold above 1",
        _set("spec.prediction.threshold", "1.2"),
        "spec.prediction.threshold in body should match",
    ),
    (
        "a PostgreSQL store without its DSN Secret",
        _set("spec.outcomes.store", {"type": "postgresql"}),
        "outcomes.store.dsnSecret is required when outcomes.store.type is postgresql",
    ),
    (
        "a DSN Secret on a SQLite store",
        _set("spec.outcomes.store", {"type": "sqlite", "dsnSecret": {"name": "db"}}),
        "outcomes.store.dsnSecret is used only with outcomes.store.type postgresql",
    ),
    (
        "a qualification period shorter than the interval",
        _set("spec.evaluation", {"interval": "2h", "qualificationPeriod": "1h"}),
        "evaluation.qualificationPeriod must be at least evaluation.interval",
    ),
    (
        "an interval under five seconds",
        _set("spec.evaluation.interval", "2s"),
        "evaluation.interval must be at least 5s",
    ),
    ("no SLOs", lambda b: b["spec"].pop("slos"), "spec.slos: Required value"),
    (
        "no owners",
        _set("spec.owners", []),
        "spec.owners: Invalid value: 0: spec.owners in body should have at least 1 items",
    ),
    (
        "a name too long for its children",
        _set("metadata.name", "a-clinical-model-with-a-very-long-name-indeed"),
        "metadata.name must be at most 40 characters",
    ),
    (
        "an empty image",
        _set("spec.model.image", ""),
        "spec.model.image in body should be at least 1 chars long",
    ),
    (
        "no outcome token Secret",
        _also(lambda b: b["spec"]["outcomes"].pop("tokenSecret")),
        "spec.outcomes.tokenSecret: Required value",
    ),
    (
        "an early warning estimating an SLO whose metric needs outcomes",
        _set("spec.earlyWarning", {"estimates": [{"slo": "calibration-payer"}]}),
        "spec.earlyWarning.estimates: Invalid value: earlyWarning.estimates[].slo must name "
        "an SLO in slos whose metric is tpr, fpr, ppv or selectionRate",
    ),
    (
        "an early warning estimating an SLO that is not declared",
        _set("spec.earlyWarning", {"estimates": [{"slo": "no-such-slo"}]}),
        "earlyWarning.estimates[].slo must name an SLO in slos",
    ),
    (
        "an early warning that rolls back",
        _set("spec.earlyWarning", {"action": "Rollback"}),
        'spec.earlyWarning.action: Unsupported value: "Rollback"',
    ),
    (
        "an early warning with an unknown signal",
        _set("spec.earlyWarning", {"signals": ["temperature"]}),
        'spec.earlyWarning.signals[0]: Unsupported value: "temperature"',
    ),
    (
        "an early warning with a false-alarm rate above 0.1",
        _set("spec.earlyWarning", {"falseAlarmRate": "0.5"}),
        'spec.earlyWarning.falseAlarmRate: Invalid value: "0.5": earlyWarning.falseAlarmRate '
        "must be a decimal string in (0, 0.1]",
    ),
]


@pytest.fixture(scope="module")
def crds(kubeconfig: str) -> None:
    """The project's CRDs, installed (idempotently) and established."""
    kubectl = Kubectl(kubeconfig)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/clinicalmodels.equiguard.io",
        "crd/equitydecisions.equiguard.io",
    )


@pytest.mark.cluster
def test_the_example_clinicalmodel_is_accepted(kubectl: Any, namespace: str, crds: None) -> None:
    result = kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(EXAMPLE),
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.cluster
def test_a_model_without_an_image_is_accepted(kubectl: Any, namespace: str, crds: None) -> None:
    # The operator's --model-image serves it.
    body = copy.deepcopy(EXAMPLE)
    del body["spec"]["model"]["image"]
    result = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", "-o", "json",
        input=json.dumps(body), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["model"] == {"bento": "readmission:v1"}


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("case", "mutate", "message"), BAD_SPECS, ids=[case for case, _, _ in BAD_SPECS]
)
def test_refuses_a_bad_spec_with_a_message_naming_the_field(
    kubectl: Any,
    namespace: str,
    crds: None,
    case: str,
    mutate: Callable[[Body], None],
    message: str,
) -> None:
    body = copy.deepcopy(EXAMPLE)
    mutate(body)
    result = kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body), check=False
    )
    assert result.returncode != 0, f"{case}: accepted"
    assert message in result.stderr, result.stderr


@pytest.mark.cluster
def test_an_equity_decision_cannot_be_changed_once_written(
    kubectl: Any, namespace: str, crds: None
) -> None:
    record = {
        "apiVersion": "equiguard.io/v1alpha1",
        "kind": "EquityDecision",
        "metadata": {"name": "readmission-risk-rollback-1"},
        "spec": {
            "model": "readmission-risk",
            "decision": "Rollback",
            "time": "2026-01-01T00:00:00Z",
            "reason": "RollbackTriggered",
            "message": "rolled back",
            "enforcement": "Enforce",
            "dryRun": False,
            "revision": "readmission:v2",
            "targetRevision": "readmission:v1",
        },
    }
    kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(record))
    result = kubectl(
        "patch",
        "-n",
        namespace,
        "equitydecision",
        "readmission-risk-rollback-1",
        "--type=merge",
        "-p",
        '{"spec": {"targetRevision": "readmission:v0"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "EquityDecision records are immutable" in result.stderr
