"""What leaves the pod without the token: the SLO windows, suppressed together.

The SLO windows declared in the configuration are the only spans published
to readers without the bearer token, by every open output: /v1/metrics, the
Prometheus gauges of /metrics and the evidence of /v1/slo. Their metrics are
suppressed jointly (`suppress_spans`): a window is a shorter one plus an
older part, so a count hidden in one, or the part between two, must not
follow from the others. Any other span could be subtracted from a published
one; it goes only to readers with the token (/v1/stats, or /v1/metrics with
the token).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.spec import Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_spans
from equiguard.sidecar.statistics import LiveStatistics

# The level of the intervals in /v1/metrics (the audit's default).
CONFIDENCE = 0.95
_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


@dataclass(frozen=True)
class Publication:
    """One revision's published tables at one instant."""

    windows: tuple[float, ...]  # seconds, shortest first
    metrics: tuple[dict[str, Any], ...]  # each window's suppressed metrics
    hidden: frozenset[tuple[str, str, str]]  # (dimension, group, metric) hidden in any window

    def of(self, window: float) -> dict[str, Any]:
        return self.metrics[self.windows.index(window)]


def declared_windows(slos: Sequence[Slo], span_seconds: float) -> tuple[float, ...]:
    """The SLO windows the statistics can hold, shortest first (the span if none fits)."""
    windows = sorted({slo.window_seconds for slo in slos if slo.window_seconds <= span_seconds})
    return tuple(windows) or (span_seconds,)


def window_label(seconds: float) -> str:
    """A window as the spec writes durations: 7d, 36h, 90m."""
    for unit, size in _UNITS:
        if seconds >= size and math.isclose(seconds / size, round(seconds / size)):
            return f"{round(seconds / size)}{unit}"
    return f"{seconds:g}s"


def publish(
    totals: Sequence[Statistics], windows: Sequence[float], layout: CellLayout
) -> Publication:
    """Suppress the statistics of nested windows ending at one instant, together."""
    reports = [{"metrics": metrics_report(compute_metrics(t, CONFIDENCE))} for t in totals]
    safe = [report["metrics"] for report in suppress_spans(reports, layout)]
    hidden = frozenset(
        (dimension, group, name)
        for table in safe
        for dimension, groups in table.items()
        for group, block in groups.items()
        for name in block.get("suppressed", ())
    )
    return Publication(tuple(windows), tuple(safe), hidden)


class Publisher:
    """The publication of each revision, computed once per change of the statistics
    or of the bucket the instant falls in (a window sums whole buckets)."""

    def __init__(self, statistics: LiveStatistics, windows: Sequence[float]) -> None:
        self.statistics = statistics
        self.windows = tuple(windows)
        self._cache: dict[str, tuple[tuple[int, int], Publication]] = {}

    def at(self, revision: str, now: float) -> Publication:
        key = (self.statistics.version, math.floor(now / self.statistics.bucket_seconds))
        cached = self._cache.get(revision)
        if cached is not None and cached[0] == key:
            return cached[1]
        totals = [self.statistics.total(revision, now, w) for w in self.windows]
        publication = publish(totals, self.windows, self.statistics.layout)
        if revision in self.statistics.windows:  # any name may be asked for: keep only real ones
            self._cache[revision] = (key, publication)
        return publication
