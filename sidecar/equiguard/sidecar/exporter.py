"""Prometheus metrics from the statistics: a custom collector, never children per request.

The collector reads the counts this process joined since it started, passes
them through the engine's small-cell suppression, and yields one sample per
cell that may leave the pod. Suppressed cells have no sample at all (a
counter that is missing until it exceeds the limit, rather than one that
reveals it).

A model with many subgroups has tens of thousands of series. Suppressing and
rendering them takes longer than a scrape should, so a scrape is answered
from the last rendering, and a scrape that finds the statistics changed
starts the next rendering on a worker thread from a copy of them: the
samples lag the statistics by at most one scrape interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.engine.stats import Statistics
from equiguard.engine.suppression import suppress_small_cells
from equiguard.sidecar.statistics import LiveStatistics
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
SUPPRESSION_NOTE = " Cells of 1 to 10 predictions, and cells that would reveal them, are absent."

Sample = tuple[tuple[str, ...], float]


@dataclass(frozen=True)
class Snapshot:
    version: int
    totals: Mapping[str, Statistics]  # copies: the live ones keep changing


@dataclass(frozen=True)
class Rendering:
    version: int
    samples: Mapping[str, list[Sample]]
    text: bytes


class SubgroupCollector(Collector):
    def __init__(self, config: SidecarConfig, statistics: LiveStatistics) -> None:
        self._config = config
        self._statistics = statistics
        self._label_text: dict[tuple[str, ...], str] = {}
        self.rendering: Rendering | None = None

    def collect(self) -> Iterator[Metric]:
        rendering = self.rendering or self.render(self.snapshot())
        for count, name, help_text in COUNTS:
            family = CounterMetricFamily(name, help_text + SUPPRESSION_NOTE, labels=LABELS)
            for labels, value in rendering.samples[count]:
                family.add_metric(labels, value)
            yield family

    def stale(self) -> bool:
        return self.rendering is None or self.rendering.version != self._statistics.version

    def snapshot(self) -> Snapshot:
        """A copy of the counts to render (taken on the event loop, between updates)."""
        totals = self._statistics.since_start
        return Snapshot(self._statistics.version, {r: s.copy() for r, s in totals.items()})

    def render(self, snapshot: Snapshot) -> Rendering:
        """Suppress and render a snapshot (safe on a worker thread); becomes the current one."""
        samples: dict[str, list[Sample]] = {count: [] for count, _, _ in COUNTS}
        for revision, totals in snapshot.totals.items():
            identity = (self._config.model_name, self._config.namespace, revision)
            blocks = suppress_small_cells(
                {"metrics": _count_blocks(totals)}, self._statistics.layout
            )
            for dimension, groups in blocks["metrics"].items():
                for group, block in groups.items():
                    for count in samples:
                        if block[count] is not None:
                            samples[count].append(
                                ((*identity, dimension, group), float(block[count]))
                            )
        lines: list[str] = []
        for count, name, help_text in COUNTS:
            lines.append(f"# HELP {name}_total {help_text}{SUPPRESSION_NOTE}")
            lines.append(f"# TYPE {name}_total counter")
            lines.extend(
                f"{name}_total{{{self._labels(labels)}}} {value!r}"
                for labels, value in samples[count]
            )
        rendering = Rendering(snapshot.version, samples, ("\n".join(lines) + "\n").encode())
        if self.rendering is None or self.rendering.version < rendering.version:
            self.rendering = rendering
        return rendering

    def _labels(self, values: tuple[str, ...]) -> str:
        text = self._label_text.get(values)
        if text is None:
            text = ",".join(  # in name order, as prometheus_client writes them
                f'{name}="{_escape(value)}"'
                for name, value in sorted(zip(LABELS, values, strict=True))
            )
            self._label_text[values] = text
        return text


def _count_blocks(totals: Statistics) -> dict[str, dict[str, dict[str, object]]]:
    """The counts of the engine's metrics report, and only those: the counters need
    nothing else, and suppression decides from the counts alone."""
    tp, fp, tn, fn = totals.confusion()
    blocks: dict[str, dict[str, dict[str, object]]] = {}
    for (dimension, group), a, b, c, d in zip(
        totals.cells, tp.tolist(), fp.tolist(), tn.tolist(), fn.tolist(), strict=True
    ):
        blocks.setdefault(dimension, {})[group] = {
            "n": a + b + c + d, "positives": a + d, "negatives": b + c,
            "predictedPositives": a + b, "predictedNegatives": c + d,
            "tp": a, "fp": b, "tn": c, "fn": d, "intervals": {},
        }  # fmt: skip
    return blocks


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
