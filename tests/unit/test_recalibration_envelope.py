"""spec.changeControl read with the CRD's defaults and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from equiguard.contracts.change_control import parse_envelope
from equiguard.engine.spec import SpecError, parse_duration
from helpers.bento import REPO


def crd_change_control() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "clinicalmodel.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    properties: dict[str, Any] = schema["properties"]["spec"]["properties"]["changeControl"][
        "properties"
    ]
    return properties


def test_defaults_equal_the_crds_defaults() -> None:
    crd = crd_change_control()
    acceptance = crd["acceptance"]["properties"]
    pacing = crd["maxRecalibrations"]["properties"]
    envelope = parse_envelope({"changeControl": {"methods": ["platt"]}})
    assert envelope.window_seconds == parse_duration(crd["window"]["default"])
    assert envelope.holdout_fraction == float(crd["holdoutFraction"]["default"])
    assert envelope.min_outcomes_per_group == crd["minOutcomesPerGroup"]["default"]
    assert envelope.approval_required is crd["approvalRequired"]["default"]
    assert envelope.acceptance.all_slos_met is acceptance["allSLOsMet"]["default"]
    assert envelope.acceptance.max_auroc_decrease == float(
        acceptance["maxAurocDecrease"]["default"]
    )
    assert envelope.acceptance.max_brier_increase == float(
        acceptance["maxBrierIncrease"]["default"]
    )
    assert envelope.acceptance.max_calibration_error == float(
        acceptance["maxCalibrationError"]["default"]
    )
    assert envelope.max_recalibrations == pacing["count"]["default"]
    assert envelope.recalibration_period_seconds == parse_duration(pacing["period"]["default"])


def test_the_methods_are_the_crds_and_are_tried_from_the_least_flexible() -> None:
    assert crd_change_control()["methods"]["items"]["enum"] == [
        "platt",
        "isotonic",
        "groupThreshold",
    ]
    envelope = parse_envelope({"changeControl": {"methods": ["groupThreshold", "platt"]}})
    assert envelope.methods == ("platt", "groupThreshold")


@pytest.mark.parametrize(
    ("change_control", "message"),
    [
        (None, "spec.changeControl: is required for a recalibration"),
        ({"methods": []}, "spec.changeControl.methods: must list one or more of"),
        ({"methods": ["temperature"]}, "spec.changeControl.methods[0]: 'temperature' is not one"),
        ({"methods": ["platt"], "holdoutFraction": "0.95"}, "spec.changeControl.holdoutFraction"),
        ({"methods": ["platt"], "minOutcomesPerGroup": 5}, "smaller groups could identify"),
        ({"methods": ["platt"], "window": "7 days"}, "spec.changeControl.window: '7 days'"),
        (
            {"methods": ["platt"], "acceptance": {"maxBrierIncrease": "a lot"}},
            "spec.changeControl.acceptance.maxBrierIncrease: 'a lot' is not a number",
        ),
    ],
)
def test_an_invalid_envelope_is_refused_naming_the_field(
    change_control: dict[str, Any] | None, message: str
) -> None:
    spec = {} if change_control is None else {"changeControl": change_control}
    with pytest.raises(SpecError) as error:
        parse_envelope(spec)
    assert message in str(error.value)
