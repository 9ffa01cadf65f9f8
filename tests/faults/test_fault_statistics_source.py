"""Fault: the statistics source is down, hangs, or answers garbage.

Two stand-in sidecars serve /v1/stats on loopback addresses (127.0.0.2 and
127.0.0.3), as two pods of the serving revision would. The operator's own code
reads them (operator.reconcile's gathering, with the pods and the token from a
stand-in API), evaluates and decides on an injected clock. The serving
revision's statistics show a confident equity violation. What must hold: while
one pod's statistics cannot be read, every SLO is Inconclusive
(StatisticsUnavailable) and nothing is rolled back; with both readable, the
same statistics do roll back (so the fault is what held the action). The
operator's metrics over the same timeline, fed to promtool with the model's
PrometheusRule, fire EquityStatisticsMissing: its absent() branch when
statistics were never read, its staleness branch when they stop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from equiguard.contracts import names
from equiguard.contracts.model import read_model
from equiguard.contracts.status import PriorStatus, RevisionRecord
from equiguard.operator.alerts import GATHERED_METRIC, build_prometheus_rule
from equiguard.operator.decide import Decision, decide
from equiguard.operator.draft import Observation
from equiguard.operator.manifests import Images
from equiguard.operator.metrics import OperatorMetrics
from equiguard.operator.reconcile import Settings, _results
from equiguard.operator.serving import plan_serving
from helpers.standins import (
    PODS,
    STATS_TOKEN,
    Answer,
    StandInPods,
    healthy,
    stand_in_pods,
    violated_share,
)

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
V1, V2 = "readmission:v1", "readmission:v2"
SETTINGS = Settings(
    Images(sidecar="sidecar:1", job="operator:1", model="runtime:1"), stats_timeout=2
)
LABELS = {"namespace": "clinic", "model": "readmission-risk"}


def manifest() -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=1)
    body["spec"]["model"]["bento"] = V2
    body["spec"]["slos"] = [{**body["spec"]["slos"][0], "consecutiveBreaches": 1}]
    body["spec"]["evaluation"] = {"interval": "1m", "cooldown": "1h", "qualificationPeriod": "1h"}
    return body


def garbage(kind: str) -> Answer:
    def answer(share: dict[str, Any]) -> web.StreamResponse:
        if kind == "http-500":
            return web.Response(status=500, text="internal error")
        if kind == "not-json":
            return web.Response(text="<html>a login page</html>", content_type="text/html")
        if kind == "wrong-shape":
            return web.json_response({"format": "equiguard.stats/v1", "cells": "all of them"})
        if kind == "other-cells":
            return web.json_response({**share, "cells": share["cells"][:-1]})
        if kind == "negative-counts":
            histogram = json.loads(json.dumps(share["histogram"]))
            histogram[0][1][0] = -1000
            return web.json_response({**share, "histogram": histogram})
        raise AssertionError(kind)

    return answer


class StandInApi:
    """The two calls gathering makes of the API server: the pods and the token."""

    def list(self, api_version: str, kind: str, namespace: str, labels: Any) -> list[Any]:
        return [
            {
                "metadata": {
                    "name": f"pod-{i}",
                    "annotations": {names.REVISION_ANNOTATION: V2},
                },
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
            }
            for i, ip in enumerate(PODS)
        ]

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        return STATS_TOKEN


def qualified(tag: str) -> RevisionRecord:
    return RevisionRecord(
        revision=tag,
        image="runtime:1",
        generation=1,
        first_served=START - timedelta(days=3),
        last_served=START,
        met_since=None,
        qualified_at=START - timedelta(days=1) if tag == V1 else None,
        quarantined_at=None,
        quarantine_reason="",
    )


async def evaluate_once(
    body: dict[str, Any], prior: PriorStatus, now: datetime, metrics: OperatorMetrics
) -> Decision:
    """One evaluation as the operator's handler makes it, minus applying children."""
    model = read_model(body)
    plan = plan_serving(model, prior, "", SETTINGS.images)
    found, pods = await _results(
        StandInApi(),
        body,
        model,
        prior,
        plan.revision.bento,
        now,
        SETTINGS,  # type: ignore[arg-type]
    )
    decision = decide(
        Observation(
            model=model,
            prior=prior,
            plan=plan,
            deployment_ready=True,
            deployment_message="",
            pods=pods,
            results=found,
            existing_jobs=frozenset(),
            now=now,
        )
    )
    metrics.observe(
        "clinic",
        "readmission-risk",
        {slo["name"]: slo["verdict"] for slo in decision.status["slos"]},
        now.timestamp() if pods else None,
        [],
    )
    return decision


def gathered_value(metrics: OperatorMetrics) -> float | None:
    for family in metrics.collect():
        if family.name == GATHERED_METRIC:
            for sample in family.samples:
                return float(sample.value)
    return None


FAULTS = [
    "refused",
    "hangs",
    "http-500",
    "not-json",
    "wrong-shape",
    "other-cells",
    "negative-counts",
]


def inject(state: StandInPods, fault: str) -> None:
    pod = PODS[1]
    if fault == "refused":
        state.answers[pod] = None
    elif fault == "hangs":
        state.hang.add(pod)
    else:
        state.answers[pod] = garbage(fault)


@pytest.mark.parametrize("fault", FAULTS)
def test_unreadable_statistics_are_inconclusive_never_a_rollback_and_the_alert_fires(
    fault: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body = manifest()
    metrics = OperatorMetrics()
    timeline: list[tuple[int, float | None]] = []  # (minute, gathered timestamp after it)

    async def scenario() -> tuple[list[Decision], Decision]:
        decisions = []
        async with stand_in_pods(violated_share(body), monkeypatch) as state:
            inject(state, fault)
            await state.sync()
            prior = PriorStatus(serving=V2, revisions=(qualified(V1), qualified(V2)))
            for minute in range(5):
                decision = await evaluate_once(
                    body, prior, START + timedelta(minutes=minute), metrics
                )
                decisions.append(decision)
                prior = PriorStatus.read(decision.status)
                timeline.append((minute, gathered_value(metrics)))
            # The same statistics, both pods readable again: they do roll back.
            state.answers[PODS[1]], state.hang = healthy, set()
            await state.sync()
            recovered = await evaluate_once(body, prior, START + timedelta(minutes=5), metrics)
        return decisions, recovered

    decisions, recovered = asyncio.run(scenario())
    for decision in decisions:
        (slo,) = decision.status["slos"]
        assert (slo["verdict"], slo["reason"]) == ("Inconclusive", "StatisticsUnavailable")
        assert decision.serving.bento == V2
        assert [r.decision for r in decision.records if r.decision == "Rollback"] == []
        assert decision.status["actions"] == []
    assert recovered.serving.bento == V1, "readable statistics of the violation should roll back"
    assert [value for _, value in timeline] == [None] * 5
    assert_alert_fires(tmp_path, body, never_gathered=True)


def test_statistics_that_stop_arriving_fire_the_staleness_alert(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Read for five minutes, then one pod hangs: the gathered timestamp stops moving."""
    body = manifest()
    body["spec"]["slos"][0]["action"] = "Alert"  # keeps serving the violating revision
    metrics = OperatorMetrics()
    values: list[float] = []

    async def scenario() -> list[Decision]:
        decisions = []
        async with stand_in_pods(violated_share(body), monkeypatch) as state:
            prior = PriorStatus(serving=V2, revisions=(qualified(V1), qualified(V2)))
            for minute in range(15):
                if minute == 5:
                    inject(state, "hangs")
                decision = await evaluate_once(
                    body, prior, START + timedelta(minutes=minute), metrics
                )
                decisions.append(decision)
                prior = PriorStatus.read(decision.status)
                value = gathered_value(metrics)
                assert value is not None
                values.append(value - START.timestamp())
        return decisions

    decisions = asyncio.run(scenario())
    verdicts = [d.status["slos"][0]["verdict"] for d in decisions]
    assert verdicts == ["Violated"] * 5 + ["Inconclusive"] * 10
    assert values == [60.0 * min(minute, 4) for minute in range(15)]
    assert_alert_fires(tmp_path, body, never_gathered=False, gathered=values)


def assert_alert_fires(
    folder: Path, body: dict[str, Any], never_gathered: bool, gathered: list[float] | None = None
) -> None:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: cluster/system-deps.sh installs it"
    rule = build_prometheus_rule(read_model(body))
    rules = folder / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    alert = next(
        r for r in rule["spec"]["groups"][0]["rules"] if r["alert"] == "EquityStatisticsMissing"
    )
    expected = {
        "exp_labels": {"severity": "warning", **LABELS},
        "exp_annotations": alert["annotations"],
    }
    selector = ",".join(f'{k}="{v}"' for k, v in LABELS.items())
    if never_gathered:
        series = [{"series": 'up{job="operator"}', "values": "1x15"}]
        checks = [
            {"eval_time": "2m", "alertname": "EquityStatisticsMissing", "exp_alerts": [expected]}
        ]
    else:
        assert gathered is not None
        series = [
            {
                "series": f"{GATHERED_METRIC}{{{selector}}}",
                "values": " ".join(f"{value:g}" for value in gathered),
            }
        ]
        checks = [
            {"eval_time": "5m", "alertname": "EquityStatisticsMissing", "exp_alerts": []},
            {"eval_time": "12m", "alertname": "EquityStatisticsMissing", "exp_alerts": [expected]},
        ]
    suite = folder / "tests.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(suite)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
