"""The PrometheusRule of a ClinicalModel: what SREs are paged for.

The operator, not the sidecars, knows the verdicts (it sums the statistics of
every pod), so the rules read the operator's own metrics (metrics.py):
  equiguard_slo_verdict{namespace, model, slo, verdict}       1 for the current verdict
  equiguard_statistics_last_gathered_timestamp_seconds{namespace, model}
  equiguard_early_warning{namespace, model, signal}           1 while that signal fires
"""

from __future__ import annotations

from typing import Any

from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel

VERDICT_METRIC = "equiguard_slo_verdict"
GATHERED_METRIC = "equiguard_statistics_last_gathered_timestamp_seconds"
EARLY_WARNING_METRIC = "equiguard_early_warning"
DEFAULT_RUNBOOK_BASE = "https://github.com/equiguard/equiguard/blob/main/docs/operator.md"

# An SLO whose action changes the model pages someone; an Alert-only SLO warns.
_SEVERITY = {"Alert": "warning", "Rollback": "critical", "Recalibrate": "critical"}
# Statistics older than this many evaluation intervals count as stopped.
_STALE_INTERVALS = 3
# How long every SLO may stay Inconclusive before someone should look at the data feed.
_INCONCLUSIVE_FOR = "6h"


def prometheus_duration(seconds: int) -> str:
    """The shortest Prometheus duration string for a whole number of seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _selector(model: ClinicalModel, **extra: str) -> str:
    labels = {"namespace": model.namespace, "model": model.name, **extra}
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def _slo_alert(model: ClinicalModel, slo_index: int, runbook_base: str) -> dict[str, Any]:
    slo = model.slos[slo_index]
    reference = model.spec["slos"][slo_index].get("reference")
    against = f" against {reference}" if reference else ""
    return {
        "alert": "EquitySLOViolated",
        "expr": f"{VERDICT_METRIC}{_selector(model, slo=slo.name, verdict='Violated')} == 1",
        "for": prometheus_duration(model.pacing.interval),
        "labels": {
            "severity": _SEVERITY[slo.action],
            "namespace": model.namespace,
            "model": model.name,
            "slo": slo.name,
            "action": slo.action,
        },
        "annotations": {
            "summary": f"Equity SLO {slo.name} of {model.namespace}/{model.name} is violated.",
            "description": (
                f"The {slo.comparison} of {slo.metric} across {slo.attribute} groups{against} "
                f"is past its threshold {slo.threshold} over {slo.window} with confidence; "
                f"the SLO's action is {slo.action}. See "
                f"`kubectl describe clm -n {model.namespace} {model.name}` and its "
                f"EquityDecision records."
            ),
            "runbook_url": f"{runbook_base}#equitysloviolated",
        },
    }


def _statistics_missing_alert(model: ClinicalModel, runbook_base: str) -> dict[str, Any]:
    selector = _selector(model)
    stale_after = _STALE_INTERVALS * model.pacing.interval
    return {
        "alert": "EquityStatisticsMissing",
        "expr": (
            f"absent({GATHERED_METRIC}{selector}) or "
            f"(time() - {GATHERED_METRIC}{selector} > {stale_after})"
        ),
        "for": prometheus_duration(max(60, model.pacing.interval)),
        "labels": {"severity": "warning", "namespace": model.namespace, "model": model.name},
        "annotations": {
            "summary": f"No equity statistics from {model.namespace}/{model.name}.",
            "description": (
                f"The operator has not read statistics from any ready pod of "
                f"{model.namespace}/{model.name} for {_STALE_INTERVALS} evaluation intervals "
                f"(or at all): its SLOs are Inconclusive and no action can be taken."
            ),
            "runbook_url": f"{runbook_base}#equitystatisticsmissing",
        },
    }


def _inconclusive_alert(model: ClinicalModel, runbook_base: str) -> dict[str, Any]:
    return {
        "alert": "EquitySLOInconclusive",
        "expr": f"{VERDICT_METRIC}{_selector(model, verdict='Inconclusive')} == 1",
        "for": _INCONCLUSIVE_FOR,
        "labels": {"severity": "info", "namespace": model.namespace, "model": model.name},
        "annotations": {
            "summary": f"Equity SLO {{{{ $labels.slo }}}} of {model.namespace}/{model.name} "
            f"has been Inconclusive for {_INCONCLUSIVE_FOR}.",
            "description": (
                "Too few labelled outcomes reach the sidecar for some group: the SLO can "
                "neither pass nor fail. Check the outcome feed and the SLO's minSamples."
            ),
            "runbook_url": f"{runbook_base}#equitysloinconclusive",
        },
    }


def _early_warning_alert(model: ClinicalModel, runbook_base: str) -> dict[str, Any]:
    declared = model.early_warning
    assert declared is not None
    window = prometheus_duration(int(declared.window_seconds))
    holds = (
        "the serving revision does not qualify as the last good one while it holds"
        if declared.holds_rollout
        else "nothing is held"
    )
    return {
        "alert": "EquiguardEarlyWarning",
        "expr": f"max by (namespace, model) ({EARLY_WARNING_METRIC}{_selector(model)}) == 1",
        "for": prometheus_duration(model.pacing.interval),
        "labels": {
            "severity": "warning",
            "namespace": model.namespace,
            "model": model.name,
            "action": declared.action,
        },
        "annotations": {
            "summary": f"Early equity warning for {model.namespace}/{model.name}: its scores "
            f"have shifted or an estimated gap is past its threshold.",
            "description": (
                f"Label-free signals over the last {window} "
                f"depart from the reference's labelled outcomes. The action is "
                f"{declared.action}: {holds}. A warning never rolls back; the labelled SLOs "
                f"decide when outcomes arrive. See status.earlyWarning in "
                f"`kubectl describe clm -n {model.namespace} {model.name}` and the "
                f"EarlyWarning EquityDecision records."
            ),
            "runbook_url": f"{runbook_base}#equiguardearlywarning",
        },
    }


def build_prometheus_rule(
    model: ClinicalModel, runbook_base: str = DEFAULT_RUNBOOK_BASE
) -> dict[str, Any]:
    """A PrometheusRule (monitoring.coreos.com/v1) with an alert per SLO, a no-data alert and,
    with spec.earlyWarning, the early-warning alert."""
    rules = [_slo_alert(model, index, runbook_base) for index in range(len(model.slos))]
    rules.append(_statistics_missing_alert(model, runbook_base))
    rules.append(_inconclusive_alert(model, runbook_base))
    if model.early_warning is not None:
        rules.append(_early_warning_alert(model, runbook_base))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": names.prometheus_rule_name(model.name),
            "labels": names.common_labels(model.name, "alerts"),
        },
        "spec": {"groups": [{"name": f"equiguard.{model.namespace}.{model.name}", "rules": rules}]},
    }
