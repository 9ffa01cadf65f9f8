"""spec.earlyWarning as the operator, audit and the report read it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts import early_warning, model
from equiguard.engine.shift import SIGNALS
from equiguard.engine.spec import SpecError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml"


def _spec(**warning: Any) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    spec["earlyWarning"] = warning
    return spec


def test_a_model_without_an_early_warning_reads_none() -> None:
    spec = _spec()
    del spec["earlyWarning"]
    assert early_warning.read(spec) is None


def test_the_defaults_fill_an_empty_declaration() -> None:
    warning = early_warning.read(_spec())
    assert warning is not None
    assert warning.window_seconds == 86_400
    assert warning.reference_window_seconds == 30 * 86_400
    assert warning.signals == ("scoreDistribution", "flagRate", "subgroupMix")
    assert set(warning.signals) < set(SIGNALS)
    assert warning.estimates == ()
    assert warning.false_alarm_rate == 0.01
    assert warning.min_outcomes == 50
    assert not warning.holds_rollout


def test_a_watched_estimate_takes_the_slos_terms_and_may_tighten_the_threshold() -> None:
    warning = early_warning.read(
        _spec(estimates=[{"slo": "tpr-gap-race"}, {"slo": "selection-rate-floor-adi",
                                                   "threshold": "0.60"}],
              signals=["subgroupMix", "flagRate"], action="HoldRollout")
    )  # fmt: skip
    assert warning is not None
    assert warning.estimates == (
        early_warning.WatchedEstimate("tpr-gap-race", "tpr", "race", "maxGap", 0.10),
        early_warning.WatchedEstimate("selection-rate-floor-adi", "tpr", "adi_quintile",
                                      "floor", 0.60),
    )  # fmt: skip
    assert warning.signals == ("flagRate", "subgroupMix")  # the engine's order
    assert warning.holds_rollout


def test_the_example_is_read_by_the_model_contract() -> None:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["namespace"] = "clinical"
    warning = model.read_model(body).early_warning
    assert warning is not None and [e.slo for e in warning.estimates] == ["tpr-gap-race"]


@pytest.mark.parametrize(
    ("warning", "field", "words"),
    [
        ({"estimates": [{"slo": "calibration-payer"}]}, "estimates[0].slo", "cannot be estimated"),
        ({"estimates": [{"slo": "nope"}]}, "estimates[0].slo", "names no SLO"),
        ({"estimates": [{"threshold": "0.1"}]}, "estimates[0]", "naming an slo"),
        ({"window": "a day"}, "window", "not a duration"),
        ({"falseAlarmRate": "0.5"}, "falseAlarmRate", "(0, 0.1]"),
        ({"minOutcomes": 5}, "minOutcomes", "at least 11"),
        ({"action": "Rollback"}, "action", "Alert, HoldRollout"),
        ({"signals": ["temperature"]}, "signals", "'temperature' is not one of"),
    ],
)
def test_a_bad_declaration_in_a_file_is_refused_naming_the_field(
    warning: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(SpecError) as raised:
        early_warning.read(_spec(**warning))
    assert raised.value.path == f"spec.earlyWarning.{field}"
    assert words in str(raised.value)
