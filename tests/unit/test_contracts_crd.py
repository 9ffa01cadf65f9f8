"""The CRD and the contracts agree: every default and enum the schema declares
is the one the readers fall back on, so a manifest read from a file (audit, the
report, the Job) means what the API server would make of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts import change_control, early_warning, model, sidecar_config
from equiguard.engine import shift, spec
from equiguard.engine.comparison import KINDS

CRD = Path(__file__).resolve().parents[2] / "crds" / "clinicalmodel.yaml"


def _spec_schema() -> dict[str, Any]:
    body = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]["properties"]  # type: ignore[no-any-return]


SPEC = _spec_schema()
SLO = SPEC["slos"]["items"]["properties"]
CONTROL = SPEC["changeControl"]["properties"]


def _defaults(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        name: field["default"]
        for name, field in properties.items()
        if "default" in field and field["default"] != {}
    }


def test_the_slo_defaults_are_the_crds() -> None:
    assert _defaults(SLO) == dict(spec.SLO_DEFAULTS)


def test_the_evaluation_defaults_are_the_crds() -> None:
    assert _defaults(SPEC["evaluation"]["properties"]) == dict(model.EVALUATION_DEFAULTS)
    assert SPEC["evaluation"]["default"] == dict(model.EVALUATION_DEFAULTS)


def test_the_models_own_defaults_are_the_crds() -> None:
    assert {key: SPEC[key]["default"] for key in model.DEFAULTS} == dict(model.DEFAULTS)


def test_the_change_control_defaults_are_the_crds() -> None:
    assert _defaults(CONTROL) == dict(change_control.DEFAULTS)
    assert _defaults(CONTROL["acceptance"]["properties"]) == dict(
        change_control.ACCEPTANCE_DEFAULTS
    )
    assert _defaults(CONTROL["maxRecalibrations"]["properties"]) == dict(
        change_control.PACING_DEFAULTS
    )


def test_the_sidecars_outcome_defaults_are_the_crds() -> None:
    outcomes = SPEC["outcomes"]["properties"]
    assert outcomes["retention"]["default"] == sidecar_config.OUTCOMES_DEFAULTS["retention"]
    store = outcomes["store"]["properties"]["type"]
    assert (tuple(store["enum"]), store["default"]) == (
        sidecar_config.STORE_KINDS,
        sidecar_config.STORE_KINDS[0],
    )


@pytest.mark.parametrize(
    ("field", "values"),
    [
        (SLO["metric"], spec.METRICS),
        (SLO["comparison"], KINDS),
        (SLO["action"], spec.ACTIONS),
        (SPEC["enforcement"], model.ENFORCEMENTS),
        (CONTROL["methods"]["items"], change_control.METHODS),
    ],
    ids=["metric", "comparison", "action", "enforcement", "methods"],
)
def test_each_enum_is_the_contracts(field: dict[str, Any], values: tuple[str, ...]) -> None:
    assert tuple(field["enum"]) == values


def test_a_manifest_without_optional_fields_reads_as_the_crd_would_default_it() -> None:
    body = {
        "metadata": {"name": "m", "namespace": "ns"},
        "spec": {
            "model": {"bento": "readmission:v1"},
            "slos": [{"name": "tpr-gap", "metric": "tpr", "attribute": "race",
                      "comparison": "maxGap", "threshold": "0.10"}],
        },
    }  # fmt: skip
    read = model.read_model(body)
    assert read.pacing.interval == 60 and read.pacing.cooldown == 3600
    assert read.pacing.recalibration_period == 7 * 86400
    assert read.slos[0].window == "7d" and read.slos[0].action == "Alert"
    assert (read.replicas, read.enforcement, read.approval_required) == (1, "Enforce", True)
    slo = read.slos[0]
    assert (slo.min_samples, slo.confidence, slo.consecutive_breaches, slo.reference) == (
        SLO["minSamples"]["default"], SLO["confidence"]["default"],
        SLO["consecutiveBreaches"]["default"], "")  # fmt: skip
    assert dict(read.evaluation) == SPEC["evaluation"]["default"]


def test_an_envelope_reads_as_written_with_the_crds_defaults_and_only_its_own_criteria() -> None:
    spec = {"changeControl": {"methods": ["isotonic", "platt"],
                              "acceptance": {"maxBrierIncrease": "0.020"}}}  # fmt: skip
    assert change_control.read_declared(spec) == change_control.Declared(
        methods=("isotonic", "platt"),
        window=CONTROL["window"]["default"],
        min_outcomes_per_group=CONTROL["minOutcomesPerGroup"]["default"],
        approval_required=CONTROL["approvalRequired"]["default"],
        max_recalibrations=CONTROL["maxRecalibrations"]["properties"]["count"]["default"],
        recalibration_period=CONTROL["maxRecalibrations"]["properties"]["period"]["default"],
        acceptance=(("maxBrierIncrease", "0.020"),),
    )
    assert change_control.read_declared({}) is None


def test_the_early_warning_defaults_and_enums_are_the_crds() -> None:
    warning = SPEC["earlyWarning"]["properties"]
    assert _defaults(warning) == dict(early_warning.DEFAULTS)
    assert tuple(warning["action"]["enum"]) == early_warning.ACTIONS
    assert tuple(warning["signals"]["items"]["enum"]) == shift.SIGNALS
