"""Prometheus metrics from the statistics: a custom collector, never children per request.

The subgroup counts are gauges of the published windows (the SLO windows,
`publication`), one series per window and cell, suppressed together with
the same joint suppression as /v1/metrics: a count that since the process
started, or over any span nobody declared, could be subtracted from a
published window, so neither is exported. Suppressed cells have no sample
at all (a gauge that is missing while it would reveal a small cell, rather
than one that reveals it).

The gauges show the publisher's release of the bucket, as /v1/metrics does:
they change once a bucket, never with each outcome joined. A model with many
subgroups has tens of thousands of series. Suppressing and rendering them
takes longer than a scrape should, so a scrape is answered from the last
rendering, and a scrape that finds a new bucket (or a new revision) starts
the next rendering on a worker thread from a copy of the totals: the samples
lag by at most one scrape interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from equiguard.contracts.sidecar_config import SidecarConfig
from equiguard.sidecar.publication import Publication, Publisher, ReleaseInputs, window_label
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LABELS = ("model", "namespace", "revision", "window", "attribute", "group")
# (count in the engine's metrics report, metric name, help)
COUNTS = (
    ("tp", "equiguard_window_true_positives", "Labelled predictions with decision 1 and outcome 1"),
    (
        "fp",
        "equiguard_window_false_positives",
        "Labelled predictions with decision 1 and outcome 0",
    ),
    ("tn", "equiguard_window_true_negatives", "Labelled predictions with decision 0 and outcome 0"),
    (
        "fn",
        "equiguard_window_false_negatives",
        "Labelled predictions with decision 0 and outcome 1",
    ),
)
SUPPRESSION_NOTE = (
    " made in the SLO window ending now. Cells of 1 to 10 predictions, and cells that would"
    " reveal them in this window or another, are absent."
)

Sample = tuple[tuple[str, ...], float]


Version = tuple[int, tuple[str, ...]]  # (bucket index of the instant, the revisions)


@dataclass(frozen=True)
class Snapshot:
    version: Version
    # Per revision, its release of the bucket, or what to make it from.
    releases: Mapping[str, Publication | ReleaseInputs]


@dataclass(frozen=True)
class Rendering:
    version: Version
    samples: Mapping[str, list[Sample]]
    text: bytes


class SubgroupCollector(Collector):
    def __init__(
        self,
        config: SidecarConfig,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._clock = clock
        self._label_text: dict[tuple[str, ...], str] = {}
        self.rendering: Rendering | None = None

    def collect(self) -> Iterator[Metric]:
        rendering = self.rendering or self.render(self.snapshot())
        for count, name, help_text in COUNTS:
            family = GaugeMetricFamily(name, help_text + SUPPRESSION_NOTE, labels=LABELS)
            for labels, value in rendering.samples[count]:
                family.add_metric(labels, value)
            yield family

    def stale(self) -> bool:
        return self.rendering is None or self.rendering.version != self._version(self._clock())

    def snapshot(self) -> Snapshot:
        """The published windows' counts to render (summed on the event loop, between updates)."""
        now = self._clock()
        publisher = self._publisher
        releases = {
            revision: publisher.current(revision, now) or publisher.inputs(revision, now)
            for revision in publisher.statistics.windows
        }
        return Snapshot(self._version(now), releases)

    def render(self, snapshot: Snapshot) -> Rendering:
        """Suppress and render a snapshot (safe on a worker thread); becomes the current one."""
        samples: dict[str, list[Sample]] = {count: [] for count, _, _ in COUNTS}
        windows = self._publisher.windows
        for revision, made in snapshot.releases.items():
            published = (
                made if isinstance(made, Publication) else self._publisher.released(revision, made)
            )
            for window, table in zip(windows, published.metrics, strict=True):
                identity = (
                    self._config.model_name,
                    self._config.namespace,
                    revision,
                    window_label(window),
                )
                for dimension, groups in table.items():
                    for group, block in groups.items():
                        for count in samples:
                            if block[count] is not None:
                                samples[count].append(
                                    ((*identity, dimension, group), float(block[count]))
                                )
        lines: list[str] = []
        for count, name, help_text in COUNTS:
            lines.append(f"# HELP {name} {help_text}{SUPPRESSION_NOTE}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(
                f"{name}{{{self._labels(labels)}}} {value!r}" for labels, value in samples[count]
            )
        rendering = Rendering(snapshot.version, samples, ("\n".join(lines) + "\n").encode())
        if self.rendering is None or self.rendering.version[0] <= rendering.version[0]:
            self.rendering = rendering
        return rendering

    def _version(self, now: float) -> Version:
        return (self._publisher.bucket(now), tuple(self._publisher.statistics.windows))

    def _labels(self, values: tuple[str, ...]) -> str:
        text = self._label_text.get(values)
        if text is None:
            text = ",".join(  # in name order, as prometheus_client writes them
                f'{name}="{_escape(value)}"'
                for name, value in sorted(zip(LABELS, values, strict=True))
            )
            self._label_text[values] = text
        return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
