"""The operator's metrics: one-hot verdicts per SLO and evaluation durations."""

from __future__ import annotations

from equiguard.operator.metrics import OperatorMetrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def _samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_each_slo_reports_exactly_its_current_verdict() -> None:
    metrics = OperatorMetrics()
    metrics.observe("clinic", "m", {"tpr-gap": "Violated"}, 1000.0, [("Rollback", False)])
    samples = _samples(metrics)
    labels = (("model", "m"), ("namespace", "clinic"), ("slo", "tpr-gap"))
    assert samples[("equiguard_slo_verdict", (*labels, ("verdict", "Violated")))] == 1.0
    assert samples[("equiguard_slo_verdict", (*labels, ("verdict", "Met")))] == 0.0
    assert samples[("equiguard_slo_verdict", (*labels, ("verdict", "Inconclusive")))] == 0.0
    gathered = (
        "equiguard_statistics_last_gathered_timestamp_seconds",
        (("model", "m"), ("namespace", "clinic")),
    )
    assert samples[gathered] == 1000.0
    action = (("action", "Rollback"), ("dry_run", "false"), ("model", "m"), ("namespace", "clinic"))
    assert samples[("equiguard_actions_total", action)] == 1.0


def test_an_evaluation_without_statistics_keeps_the_last_gathered_time() -> None:
    metrics = OperatorMetrics()
    metrics.observe("clinic", "m", {"tpr-gap": "Met"}, 1000.0, [])
    metrics.observe("clinic", "m", {"tpr-gap": "Inconclusive"}, None, [])
    gathered = (
        "equiguard_statistics_last_gathered_timestamp_seconds",
        (("model", "m"), ("namespace", "clinic")),
    )
    assert _samples(metrics)[gathered] == 1000.0


def test_a_deleted_model_disappears_from_the_metrics() -> None:
    metrics = OperatorMetrics()
    metrics.observe("clinic", "m", {"tpr-gap": "Met"}, 1000.0, [])
    metrics.forget("clinic", "m")
    assert not any(name == "equiguard_slo_verdict" for name, _ in _samples(metrics))


def test_evaluation_durations_fill_cumulative_buckets() -> None:
    metrics = OperatorMetrics()
    for seconds in (0.03, 0.2, 0.2, 40.0):
        metrics.observe_duration(seconds)
    samples = _samples(metrics)
    bucket = "equiguard_evaluation_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.05"),))] == 1
    assert samples[(bucket, (("le", "0.25"),))] == 3
    assert samples[(bucket, (("le", "30.0"),))] == 3
    assert samples[(bucket, (("le", "+Inf"),))] == 4
    assert samples[("equiguard_evaluation_duration_seconds_count", ())] == 4
