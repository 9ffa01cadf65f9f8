"""What leaves the pod without the token: the SLO windows, suppressed together.

The SLO windows declared in the configuration are the only spans published
to readers without the bearer token, by every open output: /v1/metrics, the
Prometheus gauges of /metrics and the evidence of /v1/slo. Their metrics are
suppressed jointly (`suppress_spans`): a window is a shorter one plus an
older part, so a count hidden in one, or the part between two, must not
follow from the others. Any other span could be subtracted from a published
one; it goes only to readers with the token (/v1/stats, or /v1/metrics with
the token).

They are published as releases, one per bucket of the statistics'
windows: every answer within a bucket is the same, so asking again tells
nothing new, and each release is suppressed with the one before it
(`engine.release`), so the outcomes joined between two releases cannot be
counted by subtracting them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.release import Release, release
from equiguard.engine.spec import Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
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
    totals: Sequence[Statistics],
    windows: Sequence[float],
    layout: CellLayout,
    bucket: int = 0,
    previous: Release | None = None,
    grown: Sequence[bool] = (),
) -> tuple[Release, Publication]:
    """Suppress the statistics of nested windows ending at one instant together, and
    with the previous release of each window that only grew since."""
    truth = [metrics_report(compute_metrics(t, CONFIDENCE)) for t in totals]
    released = release(truth, layout, bucket, previous, grown)
    hidden = frozenset(
        (dimension, group, name)
        for table in released.published
        for dimension, groups in table.items()
        for group, block in groups.items()
        for name in block.get("suppressed", ())
    )
    return released, Publication(tuple(windows), released.published, hidden)


@dataclass(frozen=True)
class ReleaseInputs:
    """What a release is computed from, read on the event loop (the statistics change there)."""

    bucket: int
    totals: tuple[Statistics, ...]
    grown: tuple[bool, ...]  # per window: no bucket with data left it since the last release


class Publisher:
    """Each revision's release for the bucket the instant falls in (`engine.release`):
    made at the first answer in a bucket and given to every answer after it, so
    two answers differ only from one bucket to the next."""

    def __init__(self, statistics: LiveStatistics, windows: Sequence[float]) -> None:
        self.statistics = statistics
        self.windows = tuple(windows)
        self._releases: dict[str, tuple[Release, Publication, ReleaseInputs]] = {}
        self._lock = threading.Lock()  # the exporter releases on a worker thread

    def bucket(self, now: float) -> int:
        return math.floor(now / self.statistics.bucket_seconds)

    def current(self, revision: str, now: float) -> Publication | None:
        """The release of the instant's bucket, if it was made."""
        kept = self._releases.get(revision)
        return kept[1] if kept is not None and kept[0].bucket == self.bucket(now) else None

    def inputs(self, revision: str, now: float) -> ReleaseInputs:
        """On the event loop: the totals, and whether each window only grew since the last."""
        totals = tuple(self.statistics.total(revision, now, w) for w in self.windows)
        kept = self._releases.get(revision)
        window = self.statistics.windows.get(revision)
        grown: tuple[bool, ...] = ()
        if kept is not None:
            then = kept[0].bucket * self.statistics.bucket_seconds
            grown = tuple(
                window is None
                or not window.holds_data_before(
                    window.first_bucket(now, w), since=window.first_bucket(then, w)
                )
                for w in self.windows
            )
        return ReleaseInputs(self.bucket(now), totals, grown)

    def released(self, revision: str, inputs: ReleaseInputs) -> Publication:
        """The release for `inputs` (made once per bucket; any thread)."""
        with self._lock:
            kept = self._releases.get(revision)
            if kept is not None and kept[0].bucket >= inputs.bucket:
                return kept[1]
            previous = kept[0] if kept is not None else None
            made, publication = publish(
                inputs.totals, self.windows, self.statistics.layout,
                inputs.bucket, previous, inputs.grown,
            )  # fmt: skip
            if revision in self.statistics.windows:  # any name may be asked for: keep real ones
                self._releases[revision] = (made, publication, inputs)
            return publication

    def at(self, revision: str, now: float) -> Publication:
        return self.current(revision, now) or self.released(revision, self.inputs(revision, now))

    def totals(self, revision: str, now: float) -> dict[float, Statistics]:
        """The statistics of each window as the bucket's release published them, so
        that figures computed from them (a verdict's evidence) match its tables."""
        publication = self.at(revision, now)
        kept = self._releases.get(revision)
        if kept is None or kept[1] is not publication:  # a revision with no statistics
            return {w: self.statistics.total(revision, now, w) for w in self.windows}
        return dict(zip(self.windows, kept[2].totals, strict=True))
