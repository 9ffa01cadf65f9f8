"""Prometheus metrics from the current statistics, built at scrape time.

No labelled child is created per request: at each scrape the collector reads
the counts this process joined since it started, passes them through the
engine's small-cell suppression, and yields one sample per cell that may
leave the pod. Suppressed cells have no sample at all (a counter that is
missing until it exceeds the limit, rather than one that reveals it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.suppression import suppress_small_cells
from equiguard.sidecar.config import SidecarConfig
from equiguard.sidecar.statistics import LiveStatistics
from equiguard.sidecar.writer import RecordWriter
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LABELS = ("model", "namespace", "revision", "attribute", "group")
# (count in the engine's metrics report, metric name without _total, help)
COUNTS = (
    ("tp", "equiguard_true_positives", "Labelled predictions with decision 1 and outcome 1."),
    ("fp", "equiguard_false_positives", "Labelled predictions with decision 1 and outcome 0."),
    ("tn", "equiguard_true_negatives", "Labelled predictions with decision 0 and outcome 0."),
    ("fn", "equiguard_false_negatives", "Labelled predictions with decision 0 and outcome 1."),
)

Sample = tuple[tuple[str, ...], float]


@dataclass
class _Cached:
    version: int
    samples: dict[str, list[Sample]]


class SubgroupCollector(Collector):
    def __init__(
        self, config: SidecarConfig, statistics: LiveStatistics, writer: RecordWriter
    ) -> None:
        self._config = config
        self._statistics = statistics
        self._writer = writer
        self._cached = _Cached(-1, {})

    def collect(self) -> Iterator[Metric]:
        samples = self._samples()
        for count, name, help_text in COUNTS:
            family = CounterMetricFamily(
                name, help_text + " Cells of 1 to 10 are not exported.", labels=LABELS
            )
            for labels, value in samples[count]:
                family.add_metric(labels, value)
            yield family
        yield CounterMetricFamily(
            "equiguard_sidecar_dropped_predictions",
            "Predictions not recorded because the store was too far behind.",
            value=self._writer.dropped_predictions,
        )

    def _samples(self) -> dict[str, list[Sample]]:
        # Scrapes between two joins reuse the suppressed counts.
        version = self._statistics.version
        if self._cached.version == version:
            return self._cached.samples
        samples: dict[str, list[Sample]] = {count: [] for count, _, _ in COUNTS}
        for revision, totals in self._statistics.since_start.items():
            report = suppress_small_cells(
                {"metrics": metrics_report(compute_metrics(totals))}, self._statistics.layout
            )
            metrics = report["metrics"]
            assert isinstance(metrics, dict)
            identity = (self._config.model_name, self._config.namespace, revision)
            for dimension, groups in metrics.items():
                for group, block in groups.items():
                    for count in samples:
                        value = block[count]
                        if value is not None:
                            samples[count].append(((*identity, dimension, group), float(value)))
        self._cached = _Cached(version, samples)
        return samples
