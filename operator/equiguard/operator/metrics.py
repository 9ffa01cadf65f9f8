"""The operator's Prometheus metrics, exported from its latest state at scrape time.

What the PrometheusRules (alerts.py) alert on. Labels are the model's
namespace and name, the SLO and the verdict, the early-warning signal kind
(one of four, or `estimates`): never a patient value or a group's name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from equiguard.engine.verdict import Verdict
from equiguard.operator.alerts import EARLY_WARNING_METRIC, GATHERED_METRIC, VERDICT_METRIC
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

VERDICTS = tuple(Verdict)
# Seconds from an evaluation's start to its status being written.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class _ModelState:
    verdicts: dict[str, str] = field(default_factory=dict)
    gathered_at: float | None = None
    evaluations: int = 0
    actions: dict[tuple[str, bool], int] = field(default_factory=dict)
    warning: dict[str, float] = field(default_factory=dict)


class OperatorMetrics(Collector):
    """Holds the latest verdicts per model; a collector over them for the registry."""

    def __init__(self, api_requests: Callable[[], Mapping[str, int]] | None = None) -> None:
        # The API client's own count of calls by method, read at scrape time.
        self._api_requests = api_requests
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], _ModelState] = {}
        self._durations = [0] * (len(DURATION_BUCKETS) + 1)
        self._duration_sum = 0.0

    def observe(
        self,
        namespace: str,
        model: str,
        verdicts: dict[str, str],
        gathered_at: float | None,
        actions: list[tuple[str, bool]],
        warning: Mapping[str, Any] | None = None,
    ) -> None:
        """Records one evaluation: verdicts, when statistics were last read, actions decided
        and, given `status.earlyWarning`, which of its signals fire."""
        with self._lock:
            state = self._models.setdefault((namespace, model), _ModelState())
            state.verdicts = dict(verdicts)
            if gathered_at is not None:
                state.gathered_at = gathered_at
            state.evaluations += 1
            state.warning = warning_gauges(warning)
            for action in actions:
                state.actions[action] = state.actions.get(action, 0) + 1

    def observe_duration(self, seconds: float) -> None:
        """One evaluation's time from its start to its status being written."""
        with self._lock:
            index = next(
                (i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound),
                len(DURATION_BUCKETS),
            )
            self._durations[index] += 1
            self._duration_sum += seconds

    def model_count(self) -> int:
        with self._lock:
            return len(self._models)

    def forget(self, namespace: str, model: str) -> None:
        with self._lock:
            self._models.pop((namespace, model), None)

    def collect(self) -> Iterator[Metric]:
        verdict = GaugeMetricFamily(
            VERDICT_METRIC,
            "1 for the SLO's current verdict (Met, Violated, Inconclusive).",
            labels=["namespace", "model", "slo", "verdict"],
        )
        gathered = GaugeMetricFamily(
            GATHERED_METRIC,
            "When statistics were last read from every ready pod of the model (Unix time).",
            labels=["namespace", "model"],
        )
        evaluations = CounterMetricFamily(
            "equiguard_evaluations",
            "SLO evaluations of the model.",
            labels=["namespace", "model"],
        )
        actions = CounterMetricFamily(
            "equiguard_actions",
            "Actions decided (rollbacks, recalibrations), DryRun included.",
            labels=["namespace", "model", "action", "dry_run"],
        )
        early_warning = GaugeMetricFamily(
            EARLY_WARNING_METRIC,
            "1 while the early-warning signal (or the watched estimates) fires; absent while "
            "the early warning is Unavailable.",
            labels=["namespace", "model", "signal"],
        )
        with self._lock:
            cumulative, buckets = 0, []
            for bound, count in zip(
                (*DURATION_BUCKETS, float("inf")), self._durations, strict=True
            ):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            duration = HistogramMetricFamily(
                "equiguard_evaluation_duration_seconds",
                "Time from an evaluation's start to its status being written.",
                buckets=buckets,
                sum_value=self._duration_sum,
            )
            for (namespace, model), state in sorted(self._models.items()):
                for slo, current in sorted(state.verdicts.items()):
                    for name in VERDICTS:
                        verdict.add_metric(
                            [namespace, model, slo, name], 1.0 if current == name else 0.0
                        )
                if state.gathered_at is not None:
                    gathered.add_metric([namespace, model], state.gathered_at)
                evaluations.add_metric([namespace, model], state.evaluations)
                for signal, value in sorted(state.warning.items()):
                    early_warning.add_metric([namespace, model, signal], value)
                for (action, dry_run), count in sorted(state.actions.items()):
                    actions.add_metric([namespace, model, action, str(dry_run).lower()], count)
        yield from (verdict, gathered, evaluations, actions, duration, early_warning)
        if self._api_requests is not None:
            requests = CounterMetricFamily(
                "equiguard_api_requests",
                "Calls the operator's own code sent to the API server (kopf's watches apart).",
                labels=["method"],
            )
            for method, count in sorted(self._api_requests().items()):
                requests.add_metric([method], count)
            yield requests


def warning_gauges(warning: Mapping[str, Any] | None) -> dict[str, float]:
    """Per watched signal kind, 1 if it fires; nothing when there is no assessment."""
    if not warning or warning.get("state") not in ("Warning", "Clear"):
        return {}
    firing = set(warning.get("firing") or ())
    return {str(kind): float(kind in firing) for kind in warning.get("watching") or ()}
