"""How the report words an SLO: the names of metrics and denominators, and the promise.

A review panel reads these sentences beside the numbers, so they are written
from the SLO's spec alone, the same for the HTML page and the JSON document.
"""

from __future__ import annotations

from equiguard.contracts.model import SloAction
from equiguard.engine.comparison import Comparison
from equiguard.engine.metrics import DENOMINATOR

METRIC_NAMES = {
    "selectionRate": "selection rate",
    "tpr": "true-positive rate",
    "fpr": "false-positive rate",
    "fnr": "false-negative rate",
    "tnr": "true-negative rate",
    "ppv": "positive predictive value",
    "npv": "negative predictive value",
    "prevalence": "prevalence",
    "brier": "Brier score",
    "ece": "expected calibration error",
    "observedExpectedRatio": "observed/expected ratio",
    "auroc": "AUROC",
    "netBenefit": "net benefit at the decision threshold",
    "calibrationIntercept": "calibration intercept",
    "calibrationSlope": "calibration slope",
}
DENOMINATOR_NAMES = {
    "n": "labelled predictions",
    "positives": "patients with the outcome",
    "negatives": "patients without the outcome",
    "predictedPositives": "patients flagged by the model",
    "predictedNegatives": "patients not flagged by the model",
}


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def compared_quantity(slo: SloAction) -> str:
    """What an SLO's estimate measures, in words (the y axis of its chart)."""
    return _compared(slo).quantity(metric_name(slo.metric), slo.attribute)


def _compared(slo: SloAction) -> Comparison:
    return Comparison(slo.comparison, float(slo.threshold), slo.reference or None)


def statement(slo: SloAction) -> str:
    """The SLO as a sentence a review panel can check the numbers against."""
    metric = metric_name(slo.metric)
    over = f"over a {slo.window} window"
    if slo.comparison == "maxGap":
        promise = (
            f"The {metric} may differ by at most {slo.threshold} between any two "
            f"{slo.attribute} groups {over}"
        )
    elif slo.comparison == "gapToReference":
        promise = (
            f"Every {slo.attribute} group's {metric} stays within {slo.threshold} of "
            f"{slo.reference or 'overall'} {over}"
        )
    elif slo.comparison == "ratioToReference":
        promise = (
            f"Every {slo.attribute} group's {metric} stays at least {slo.threshold} times "
            f"(and at most 1/{slo.threshold} times) that of {slo.reference or 'overall'} "
            f"{over}"
        )
    else:
        promise = f"Every {slo.attribute} group's {metric} stays at or above {slo.threshold} {over}"
    denominator = DENOMINATOR_NAMES.get(DENOMINATOR.get(slo.metric, "n"), "labelled predictions")
    return (
        f"{promise}. A group is judged once it has {slo.min_samples} {denominator}; a breach "
        f"counts only when the {slo.confidence} confidence bound is past the threshold, "
        f"{slo.consecutive_breaches} evaluations in a row. On a confirmed violation: "
        f"{slo.action}."
    )
