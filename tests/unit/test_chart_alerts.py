"""ServiceMonitors and the chart's PrometheusRule: gated on their API, and alerts that fire.

The rules are checked and unit-tested with promtool (Debian's prometheus
package) on synthetic series.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.chart import ALL_ON_VALUES, MONITORING_API, by_kind, helm_or_skip, render
from helpers.unavailable import unavailable

MONITORING_KINDS = ("ServiceMonitor", "PrometheusRule")
ON = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"]


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("no promtool: install Debian's prometheus package (make deps)")
    return found


def test_monitoring_objects_are_not_rendered_where_their_api_is_not_served(helm: str) -> None:
    objects = render(helm, *ON)
    for kind in MONITORING_KINDS:
        assert by_kind(objects, kind) == []


def test_monitoring_objects_are_opt_in_even_where_their_api_is_served(helm: str) -> None:
    objects = render(helm, "--api-versions", MONITORING_API)
    for kind in MONITORING_KINDS:
        assert by_kind(objects, kind) == []


def test_monitoring_objects_carry_the_configured_extra_labels(helm: str) -> None:
    objects = render(helm, "-f", str(ALL_ON_VALUES), "--api-versions", MONITORING_API)
    monitors = by_kind(objects, "ServiceMonitor")
    rules = by_kind(objects, "PrometheusRule")
    assert len(monitors) == 2 and len(rules) == 1
    for obj in monitors + rules:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_operator_metrics_keep_the_models_namespace_label(helm: str) -> None:
    objects = render(helm, *ON, "--api-versions", MONITORING_API)
    monitors = by_kind(objects, "ServiceMonitor")
    (operator,) = [m for m in monitors if m["metadata"]["name"].endswith("-operator")]
    (endpoint,) = operator["spec"]["endpoints"]
    # equiguard_slo_verdict{namespace=<the model's>}: without honorLabels the
    # target's namespace (the operator's) would overwrite it and the operator's
    # per-model alerts would never match.
    assert endpoint["honorLabels"] is True
    (service,) = by_kind(objects, "Service")
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def alert_rules(helm: str) -> dict[str, Any]:
    objects = render(helm, *ON, "--api-versions", MONITORING_API)
    (rule,) = by_kind(objects, "PrometheusRule")
    groups: dict[str, Any] = {"groups": rule["spec"]["groups"]}
    return groups


def test_every_alert_has_severity_summary_description_and_runbook(helm: str) -> None:
    for group in alert_rules(helm)["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys()
            anchor = rule["annotations"]["runbook_url"].rpartition("#")[2]
            assert anchor == rule["alert"].lower()


def test_runbook_anchors_exist_in_the_install_guide(helm: str) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "install.md").read_text()
    headings = {
        line.lstrip("#").strip().lower() for line in guide.splitlines() if line.startswith("#")
    }
    for group in alert_rules(helm)["groups"]:
        for rule in group["rules"]:
            assert rule["alert"].lower() in headings, rule["alert"]


SIDECAR = 'job="equiguard-model-servers", namespace="clinical", service="readmission-risk"'
OPERATOR_UP = 'up{job="eg-equiguard-operator", namespace="equiguard"}'


def outcomes(pod: str, status: str, values: str) -> dict[str, str]:
    labels = f'{SIDECAR}, pod="{pod}", status="{status}"'
    return {"series": f"equiguard_sidecar_outcomes_total{{{labels}}}", "values": values}


CASES: list[dict[str, Any]] = [
    {
        # The operator's target vanishes at minute 10: the alert fires 5 minutes later.
        "interval": "1m",
        "input_series": [{"series": OPERATOR_UP, "values": "1x10 _x30"}],
        "alert_rule_test": [
            {"eval_time": "9m", "alertname": "EquiguardOperatorDown", "exp_alerts": []},
            {
                "eval_time": "25m",
                "alertname": "EquiguardOperatorDown",
                "exp_alerts": [{"exp_labels": {"severity": "critical", "namespace": "equiguard"}}],
            },
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            {
                "series": f'equiguard_sidecar_dropped_predictions_total{{{SIDECAR}, pod="p1"}}',
                "values": "0x20 3x20",
            }
        ],
        "alert_rule_test": [
            {
                "eval_time": "15m",
                "alertname": "EquiguardSidecarDroppingPredictions",
                "exp_alerts": [],
            },
            {
                "eval_time": "25m",
                "alertname": "EquiguardSidecarDroppingPredictions",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": "equiguard-model-servers",
                            "namespace": "clinical",
                            "service": "readmission-risk",
                            "pod": "p1",
                        }
                    }
                ],
            },
        ],
    },
    {
        # 30% of outcomes unmatched for two hours fires; 10% never does.
        "interval": "1m",
        "input_series": [
            outcomes("p1", "accepted", "0+70x180"),
            outcomes("p1", "unknown", "0+30x180"),
            outcomes("p2", "accepted", "0+90x180"),
            outcomes("p2", "unknown", "0+10x180"),
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "EquiguardOutcomesUnmatched", "exp_alerts": []},
            {"eval_time": "170m", "alertname": "EquiguardOutcomesUnmatched", "exp_alerts": []},
        ],
    },
    {
        "interval": "1m",
        "input_series": [
            outcomes("p1", "accepted", "0+70x180"),
            outcomes("p1", "unknown", "0+30x180"),
        ],
        "alert_rule_test": [
            {"eval_time": "30m", "alertname": "EquiguardOutcomesUnmatched", "exp_alerts": []},
            {
                "eval_time": "170m",
                "alertname": "EquiguardOutcomesUnmatched",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "warning",
                            "namespace": "clinical",
                            "service": "readmission-risk",
                        }
                    }
                ],
            },
        ],
    },
]


def with_annotations(cases: list[dict[str, Any]], groups: dict[str, Any]) -> list[dict[str, Any]]:
    """The cases, each expected alert with its annotations rendered from its labels."""
    annotations = {
        rule["alert"]: rule["annotations"] for group in groups["groups"] for rule in group["rules"]
    }
    for case in cases:
        for test in case["alert_rule_test"]:
            for alert in test["exp_alerts"]:
                labels = alert["exp_labels"]
                alert["exp_annotations"] = {
                    key: re.sub(
                        r"\{\{ \$labels\.(\w+) \}\}",
                        lambda m, labels=labels: labels[m.group(1)],
                        " ".join(text.split()),
                    )
                    for key, text in annotations[test["alertname"]].items()
                }
    return cases


def test_alerts_fire_when_and_only_when_they_should(
    helm: str, promtool: str, tmp_path: Path
) -> None:
    groups = alert_rules(helm)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(groups))
    check = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tests = tmp_path / "rules-test.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": "1m",
                "tests": with_annotations(CASES, groups),
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(tests)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
