"""The PrometheusRule fires what SREs need, checked by promtool on simulated series."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.operator.alerts import build_prometheus_rule, prometheus_duration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:  # make deps installs it: a missing one fails, never skips
    pytest.fail("promtool is missing: make deps (cluster/system-deps.sh)", pytrace=False)

LABELS = 'namespace="clinic",model="readmission-risk"'


def _rule() -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"]["namespace"] = "clinic"
    return build_prometheus_rule(read_model(body))


def _annotations(alert: str) -> dict[str, str]:
    rules = _rule()["spec"]["groups"][0]["rules"]
    found: dict[str, str] = next(r for r in rules if r["alert"] == alert)["annotations"]
    return found


def _promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rule()["spec"]))
    suite = tmp_path / "tests.yaml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests})
    )
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "test", "rules", str(suite)], capture_output=True, text=True, timeout=60
    )


def _verdict_series(slo: str, violated: str, met: str) -> list[dict[str, str]]:
    return [
        {
            "series": f'equiguard_slo_verdict{{{LABELS},slo="{slo}",verdict="Violated"}}',
            "values": violated,
        },
        {"series": f'equiguard_slo_verdict{{{LABELS},slo="{slo}",verdict="Met"}}', "values": met},
        {
            "series": f"equiguard_statistics_last_gathered_timestamp_seconds{{{LABELS}}}",
            "values": "0+60x30",
        },
    ]


def test_the_rule_file_is_valid_for_prometheus(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(_rule()["spec"]))
    assert PROMTOOL is not None
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    rules = _rule()["spec"]["groups"][0]["rules"]
    early_warning = "earlyWarning" in EXAMPLE["spec"]
    assert len(rules) == len(EXAMPLE["spec"]["slos"]) + 2 + early_warning
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"]
        assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys()


def test_a_violated_slo_fires_after_its_for_duration_with_the_actions_severity(
    tmp_path: Path,
) -> None:
    result = _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": _verdict_series("tpr-gap-race", "0 0 0 1 1 1 1", "1 1 1 0 0 0 0"),
                "alert_rule_test": [
                    {"eval_time": "3m", "alertname": "EquitySLOViolated", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "EquitySLOViolated",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "namespace": "clinic",
                                    "model": "readmission-risk",
                                    "slo": "tpr-gap-race",
                                    "action": "Rollback",
                                    "verdict": "Violated",
                                },
                                "exp_annotations": _annotations("EquitySLOViolated"),
                            }
                        ],
                    },
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_met_slo_never_fires(tmp_path: Path) -> None:
    result = _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": _verdict_series("tpr-gap-race", "0x30", "1x30"),
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "EquitySLOViolated", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "EquityStatisticsMissing", "exp_alerts": []},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_fires_when_statistics_stop_arriving_or_never_arrived(tmp_path: Path) -> None:
    gathered = f"equiguard_statistics_last_gathered_timestamp_seconds{{{LABELS}}}"
    expected = {
        "exp_labels": {"severity": "warning", "namespace": "clinic", "model": "readmission-risk"},
        "exp_annotations": _annotations("EquityStatisticsMissing"),
    }
    result = _promtool(
        tmp_path,
        [
            {  # gathered every minute for 10 minutes, then the timestamp stops moving
                "interval": "1m",
                "input_series": [{"series": gathered, "values": "0+60x10 600x20"}],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "EquityStatisticsMissing", "exp_alerts": []},
                    {
                        "eval_time": "16m",
                        "alertname": "EquityStatisticsMissing",
                        "exp_alerts": [expected],
                    },
                ],
            },
            {  # the operator never reported this model at all
                "interval": "1m",
                "input_series": [{"series": 'up{job="other"}', "values": "1x10"}],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "EquityStatisticsMissing",
                        "exp_alerts": [expected],
                    },
                ],
            },
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_runbook_anchor_of_the_models_alerts_exists_in_the_operator_guide() -> None:
    guide = (REPO / "docs" / "operator.md").read_text()
    for rule in _rule()["spec"]["groups"][0]["rules"]:
        anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
        assert f'<a id="{anchor}"></a>' in guide, rule["alert"]


def test_an_early_warning_fires_while_a_signal_fires_and_names_its_runbook(
    tmp_path: Path,
) -> None:
    def series(signal: str, values: str) -> dict[str, str]:
        return {
            "series": f'equiguard_early_warning{{{LABELS},signal="{signal}"}}',
            "values": values,
        }

    expected = {
        "exp_labels": {
            "severity": "warning",
            "namespace": "clinic",
            "model": "readmission-risk",
            "action": "Alert",
        },
        "exp_annotations": _annotations("EquiguardEarlyWarning"),
    }
    assert expected["exp_annotations"]["runbook_url"].endswith("#equiguardearlywarning")
    result = _promtool(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    series("flagRate", "0 0 0 1 1 1 1 0 0 0"),
                    series("estimates", "0 0 0 0 0 1 1 0 0 0"),
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "EquiguardEarlyWarning", "exp_alerts": []},
                    {
                        "eval_time": "5m",
                        "alertname": "EquiguardEarlyWarning",
                        "exp_alerts": [expected],
                    },
                    {"eval_time": "9m", "alertname": "EquiguardEarlyWarning", "exp_alerts": []},
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_early_warning_alert_without_spec_early_warning() -> None:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"]["namespace"] = "clinic"
    del body["spec"]["earlyWarning"]
    rules = build_prometheus_rule(read_model(body))["spec"]["groups"][0]["rules"]
    assert "EquiguardEarlyWarning" not in {rule["alert"] for rule in rules}


@pytest.mark.parametrize(
    ("seconds", "text"), [(60, "1m"), (3600, "1h"), (86400, "1d"), (90, "90s"), (5400, "90m")]
)
def test_durations_are_written_the_way_prometheus_reads_them(seconds: int, text: str) -> None:
    assert prometheus_duration(seconds) == text
