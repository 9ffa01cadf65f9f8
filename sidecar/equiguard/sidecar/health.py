"""The sidecar's own health metrics: traffic, joins, store latency, backlog.

These count requests and batch items, never patients of a subgroup, so they
carry no subgroup labels and need no small-cell suppression.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Health:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.predictions = Counter(
            "equiguard_sidecar_predictions",
            "Prediction requests proxied to the model server.",
            registry=registry,
        )
        self.unscored_predictions = Counter(
            "equiguard_sidecar_unscored_predictions",
            "Successful predictions not recorded: no score in [0, 1] at the score path.",
            registry=registry,
        )
        self.rejected_requests = Counter(
            "equiguard_sidecar_rejected_requests",
            "Prediction requests answered 400 without reaching the model server.",
            registry=registry,
        )
        self.upstream_errors = Counter(
            "equiguard_sidecar_upstream_errors",
            "Requests that failed because the model server was unreachable or too slow.",
            registry=registry,
        )
        self.outcomes = Counter(
            "equiguard_sidecar_outcomes",
            "Outcome items received, by what became of them.",
            ["status"],
            registry=registry,
        )
        self.records = Counter(
            "equiguard_sidecar_records",
            "Complete records received, by what became of them.",
            ["status"],
            registry=registry,
        )
        self.store_commit_seconds = Histogram(
            "equiguard_sidecar_store_commit_seconds",
            "Time to commit one batch to the prediction store.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.dropped_predictions = Counter(
            "equiguard_sidecar_dropped_predictions",
            "Predictions answered but not stored by this process: the store was far "
            "behind (lost), or down at shutdown (the journal keeps them for the next start).",
            registry=registry,
        )
        self.store_available = Gauge(
            "equiguard_sidecar_store_available",
            "1 while the prediction store's latest commit or upkeep succeeded, 0 after one failed.",
            registry=registry,
        )
        self.pending_predictions = Gauge(
            "equiguard_sidecar_pending_predictions",
            "Predictions in the store still waiting for their outcome.",
            registry=registry,
        )
        for status in ("accepted", "unknown", "duplicate", "invalid"):
            self.outcomes.labels(status)
        for status in ("accepted", "duplicate", "invalid"):
            self.records.labels(status)
