"""The Grafana dashboard: discoverable, valid PromQL, real metric names, correct intervals.

The interval queries are evaluated by promtool (Debian's prometheus package)
on window counts spread over two pods and compared with statsmodels' Wilson
interval and the engine's own.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from equiguard.engine.intervals import wilson_interval
from equiguard.operator.metrics import OperatorMetrics
from equiguard.sidecar.exporter import SubgroupCollector
from equiguard.sidecar.health import Health
from equiguard.sidecar.publication import Publisher
from helpers.chart import CHART, by_kind, helm_or_skip, render
from helpers.unavailable import unavailable
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector
from statsmodels.stats.proportion import proportion_confint

DASHBOARD = CHART / "dashboards" / "equiguard.json"
# What Grafana substitutes before sending a query, for a concrete evaluation.
VARIABLES = {
    "$namespace": "clinical",
    "$model": "readmission-risk",
    "$attribute": "race",
    "$revision": ".*",
    "$window": "7d",
    "$__rate_interval": "5m",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("no promtool: install Debian's prometheus package (make deps)")
    return found


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels_with_targets() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel.get("targets")]


def queries() -> list[str]:
    found = [target["expr"] for panel in panels_with_targets() for target in panel["targets"]]
    found += [
        variable["definition"]
        for variable in dashboard()["templating"]["list"]
        if variable["type"] == "query"
    ]
    return found


def concrete(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def table_query(title_start: str, ref: str) -> str:
    (panel,) = [
        p
        for p in panels_with_targets()
        if p["type"] == "table" and p["title"].startswith(title_start)
    ]
    (target,) = [t for t in panel["targets"] if t["refId"] == ref]
    return concrete(target["expr"])


def exported_sample_names() -> set[str]:
    """Names of the samples the sidecar and the operator really expose."""
    health_registry = CollectorRegistry()
    Health(health_registry)
    statistics = SimpleNamespace(version=0, windows={}, bucket_seconds=60.0)
    subgroups = SubgroupCollector(
        SimpleNamespace(model_name="m", namespace="ns"),  # type: ignore[arg-type]
        Publisher(statistics, (86400.0,)),  # type: ignore[arg-type]
    )
    collectors: list[Collector] = [health_registry, subgroups, OperatorMetrics()]
    names: set[str] = set()
    for collector in collectors:
        for family in collector.collect():
            names.add(family.name)
            names |= {sample.name for sample in family.samples}
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names |= {f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    return names


def test_dashboard_configmap_is_labelled_for_grafana_discovery(helm: str) -> None:
    (configmap,) = [
        cm
        for cm in by_kind(render(helm), "ConfigMap")
        if cm["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = configmap["data"].values()
    assert json.loads(content) == dashboard()


def test_dashboard_reads_only_metrics_the_sidecar_and_operator_export() -> None:
    used = {name for expr in queries() for name in re.findall(r"\bequiguard_[a-z_]+", expr)}
    assert used, "the dashboard reads no equiguard metric"
    assert used - exported_sample_names() == set()


def test_dashboard_shows_verdicts_actions_and_every_subgroup_count() -> None:
    used = " ".join(queries())
    for metric in (
        "equiguard_slo_verdict",
        "equiguard_actions_total",
        "equiguard_window_true_positives",
        "equiguard_window_false_positives",
        "equiguard_window_true_negatives",
        "equiguard_window_false_negatives",
    ):
        assert metric in used, metric


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{index}", "expr": concrete(expr)}
        for index, expr in enumerate(queries())
        if not expr.startswith("label_values(")
    ]
    selectors = [
        concrete(expr)[len("label_values(") : -1].rsplit(",", 1)[0]
        for expr in queries()
        if expr.startswith("label_values(")
    ]
    rules += [{"record": f"dashboard:variable_{i}", "expr": s} for i, s in enumerate(selectors)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Confusion counts per group over the window, split unevenly across two pods
# (statistics merge by addition: the dashboard must sum before dividing).
COUNTS = {
    "White": {"tp": (180, 95), "fn": (40, 22)},
    "Black": {"tp": (31, 12), "fn": (25, 19)},
    "Asian": {"tp": (14, 0), "fn": (11, 13)},
}
SCALE = 1_000_000  # promtool compares exactly: compare values rounded to 1e-6


def window_series(group: str, count: str, pod: str, value: int) -> dict[str, str]:
    name = {"tp": "equiguard_window_true_positives", "fn": "equiguard_window_false_negatives"}
    labels = (
        f'namespace="clinical", model="readmission-risk", revision="readmission:v1", '
        f'window="7d", attribute="race", group="{group}", pod="{pod}"'
    )
    # Each pod's count over the SLO window, as its sidecar publishes it.
    return {"series": f"{name[count]}{{{labels}}}", "values": f"{value} {value}"}


def test_dashboard_tpr_intervals_equal_statsmodels_wilson_intervals(
    promtool: str, tmp_path: Path
) -> None:
    series = [
        window_series(group, count, pod, value)
        for group, cells in COUNTS.items()
        for count, per_pod in cells.items()
        for pod, value in zip(("pod-a", "pod-b"), per_pod, strict=True)
    ]
    expected: dict[str, list[dict[str, Any]]] = {"N": [], "E": [], "L": [], "U": []}
    for group, cells in COUNTS.items():
        tp, n = sum(cells["tp"]), sum(cells["tp"]) + sum(cells["fn"])
        low, high = proportion_confint(tp, n, alpha=0.05, method="wilson")
        engine_low, engine_high = wilson_interval([tp], [n], 0.95)
        assert (low, high) == pytest.approx((engine_low[0], engine_high[0]), abs=1e-12)
        for ref, value in (("N", n), ("E", tp / n), ("L", low), ("U", high)):
            expected[ref].append({"labels": f'{{group="{group}"}}', "value": round(value * SCALE)})
    tests = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f"round(({table_query('True-positive rate', ref)}) * {SCALE})",
                        "eval_time": "1m",
                        "exp_samples": samples,
                    }
                    for ref, samples in expected.items()
                ],
            }
        ],
    }
    path = tmp_path / "dashboard-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_verdict_timeline_maps_each_verdict_to_its_state(
    promtool: str, tmp_path: Path
) -> None:
    (panel,) = [p for p in panels_with_targets() if p["type"] == "state-timeline"]
    expr = concrete(panel["targets"][0]["expr"])
    current = {"tpr-gap-race": "Violated", "calibration-payer": "Inconclusive", "floor": "Met"}
    series = [
        {
            "series": f'equiguard_slo_verdict{{namespace="clinical", model="readmission-risk", '
            f'slo="{slo}", verdict="{verdict}"}}',
            "values": "1" if verdict == now else "0",
        }
        for slo, now in current.items()
        for verdict in ("Met", "Violated", "Inconclusive")
    ]
    mapping = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    state_value = {option["text"]: int(value) for value, option in mapping.items()}
    tests = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "0m",
                        "exp_samples": [
                            {"labels": f'{{slo="{slo}"}}', "value": state_value[now]}
                            for slo, now in current.items()
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "verdict-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()
