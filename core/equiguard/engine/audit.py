"""`equiguard audit`: assess a model's equity on historical scored records.

Reads scored records (CSV with a header, or JSON lines), takes the subgroups
and SLOs from a ClinicalModel manifest, and prints every group's metrics with
intervals and each SLO's verdict on all the records (a one-off evaluation:
no monitoring correction, one confident breach is enough). Records whose
outcomes are missing count in the `scores` section only (`score_audit`):
selection rates, and against a reference the label-free estimates and shifts.
The command itself is `equiguard.audit_command`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.score_audit import (
    DEFAULT_FALSE_ALARM_RATE,
    DEFAULT_MIN_OUTCOMES,
    current_scores,
    render_scores,
    scores_report,
)
from equiguard.engine.scored_records import Records
from equiguard.engine.slo import SloState, evaluate_slo
from equiguard.engine.spec import ModelSpec, SpecError, parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import (
    is_small,
    suppress_small_cells,
    suppress_spans,
    suppress_verdicts,
)
from equiguard.engine.utility import DecisionCurve, decision_curve
from equiguard.engine.verdict import Verdict

_TABLE_METRICS = (
    "prevalence",
    "selectionRate",
    "tpr",
    "fpr",
    "ppv",
    "npv",
    "brier",
    "ece",
    "observedExpectedRatio",
    "auroc",
    "netBenefit",
    "calibrationSlope",
)
# The decision curve's thresholds: every fifth edge of the default 100 score bins.
CURVE_THRESHOLDS = tuple(k / 100 for k in range(5, 55, 5))
_HIDDEN = "--"
_TABLE_HEADINGS = (
    "prev", "sel", "tpr", "fpr", "ppv", "npv", "brier", "ece", "O/E", "auroc", "NB", "slope"
)  # fmt: skip


def read_manifest(path: str) -> Mapping[str, Any]:
    """The first ClinicalModel manifest of a YAML file."""
    with open(path, encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if isinstance(d, Mapping)]
    manifests = [d for d in documents if d.get("kind") == "ClinicalModel"]
    if not manifests:
        raise SpecError("kind", "the file holds no ClinicalModel manifest")
    return manifests[0]


def read_model(path: str) -> ModelSpec:
    return parse_model(read_manifest(path))


def labelled_statistics(model: ModelSpec, records: Records) -> Statistics:
    """The statistics of the records whose outcome is known."""
    layout = CellLayout.from_spec(model.subgroups)
    labelled = records.with_outcomes()
    stats = Statistics.empty(layout.cells, model.threshold)
    stats.update(
        layout.assign(labelled.attributes, len(labelled.scores)), labelled.scores, labelled.labels
    )
    return stats


def build_report(
    model: ModelSpec,
    records: Records,
    confidence: float,
    *,
    suppress: bool,
    reference: Records | None = None,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    min_outcomes: int = DEFAULT_MIN_OUTCOMES,
) -> dict[str, Any]:
    """The audit report; with outcomes missing or a `reference`, its `scores` section too."""
    layout = CellLayout.from_spec(model.subgroups)
    rows = len(records.scores)
    stats = labelled_statistics(model, records)
    slos: dict[str, object] = {}
    for slo in model.slos:
        verdict, _ = evaluate_slo(slo, stats, SloState(), now=0.0, plan=None)
        slos[slo.name] = verdict.to_dict()
    report: dict[str, Any] = {
        "model": model.name,
        "records": {"rows": rows, "from": _iso(records.first_time), "to": _iso(records.last_time)},
        "threshold": model.threshold,
        "confidence": confidence,
        "metrics": metrics_report(compute_metrics(stats, confidence)),
        "slos": slos,
    }
    curve = decision_curve(stats, CURVE_THRESHOLDS)
    if reference is None and records.outcome_known.all():
        if not suppress:
            return {**report, "decisionCurve": curve_report(curve, stats.cells, None)}
        safe = suppress_small_cells(report, layout)
        return {**safe, "decisionCurve": curve_report(curve, stats.cells, safe["metrics"])}
    cell_rows = layout.assign(records.attributes, rows)
    # A missing outcome counts as a negative here only so that the table of
    # every record contains the labelled one; of it, only counts of records
    # and flagged ones (and the selection rate) are shown.
    every = Statistics.empty(layout.cells, model.threshold)
    every.update(cell_rows, records.scores, records.labels)
    every_metrics = metrics_report(compute_metrics(every, confidence))
    if suppress:
        labelled_safe, every_safe = suppress_spans(
            [{"metrics": report["metrics"]}, {"metrics": every_metrics}], layout
        )
        hidden = {
            (dimension, group, name)
            for table in (labelled_safe["metrics"], every_safe["metrics"])
            for dimension, groups in table.items()
            for group, block in groups.items()
            for name in block["suppressed"]
        }
        report = {
            **report,
            "metrics": labelled_safe["metrics"],
            "slos": suppress_verdicts(report["slos"], hidden),
        }
        every_metrics = every_safe["metrics"]
    current = current_scores(
        layout.cells, model.threshold, cell_rows, records.scores, records.outcome_known
    )
    report["scores"] = scores_report(
        current,
        every_metrics,
        None if reference is None else labelled_statistics(model, reference),
        confidence=confidence,
        false_alarm_rate=false_alarm_rate,
        min_outcomes=min_outcomes,
        suppress=suppress,
    )
    published = report["metrics"] if suppress else None
    return {**report, "decisionCurve": curve_report(curve, stats.cells, published)}


def curve_report(
    curve: DecisionCurve,
    cells: Sequence[tuple[str, str]],
    published: Mapping[str, Mapping[str, Mapping[str, Any]]] | None,
) -> dict[str, Any]:
    """The decision curve per cell (docs/engine.md). With `published` (the suppressed
    metrics), a point is null where a count from 1 to 10 follows from it: its treated
    or untreated positives or negatives, or their change from the last point shown;
    a cell whose n is hidden shows no point."""
    groups: dict[str, dict[str, Any]] = {}
    for row, (dimension, group) in enumerate(cells):
        model = [_finite(v) for v in curve.model[row]]
        treat_all = [_finite(v) for v in curve.treat_all[row]]
        if published is not None:
            model = _safe_points(curve, row, model, published[dimension][group])
            if published[dimension][group]["n"] is None:
                treat_all = [None] * len(treat_all)
        groups.setdefault(dimension, {})[group] = {"netBenefit": model, "treatAll": treat_all}
    return {"thresholds": list(curve.thresholds), "treatNone": 0.0, "groups": groups}


def _safe_points(
    curve: DecisionCurve, row: int, model: list[float | None], block: Mapping[str, Any]
) -> list[float | None]:
    if block["n"] is None or block["positives"] is None:
        return [None] * len(model)
    positives, negatives = int(block["positives"]), int(block["negatives"])
    shown: list[float | None] = []
    last: tuple[int, int] | None = None
    for column, value in enumerate(model):
        tp, fp = int(curve.tp[row, column]), int(curve.fp[row, column])
        counts = [tp, fp, positives - tp, negatives - fp]
        if last is not None:
            counts += [last[0] - tp, last[1] - fp]
        if any(is_small(c) for c in counts):
            shown.append(None)
            continue
        shown.append(value)
        last = (tp, fp)
    return shown


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")


def render_table(report: Mapping[str, Any]) -> str:
    """A fixed-width text rendering of the same report."""
    lines = [
        f"model {report['model']}: {report['records']['rows']} records, decision threshold "
        f"{report['threshold']:g}, {100 * report['confidence']:g}% intervals for tpr and fpr"
    ]
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]] = report["metrics"]
    width = max(len(g) for groups in metrics.values() for g in groups) + 2
    for dimension, groups in metrics.items():
        lines.append("")
        heading = f"{dimension:<{width}}{'n':>8}  " + "  ".join(f"{h:>6}" for h in _TABLE_HEADINGS)
        lines.append(heading + f"  {'tpr interval':>15}  {'fpr interval':>15}")
        for group, block in groups.items():
            cells = "  ".join(f"{_cell(block, m):>6}" for m in _TABLE_METRICS)
            n = _HIDDEN if block["n"] is None else str(block["n"])
            lines.append(
                f"{group:<{width}}{n:>8}  {cells}  "
                f"{_interval(block['intervals']['tpr']):>15}  "
                f"{_interval(block['intervals']['fpr']):>15}"
            )
    lines.append("")
    lines.append("SLOs")
    for name, entry in report["slos"].items():
        lines.append(f"  {name}: {entry['verdict']} ({entry['reason']})")
        lines.append(f"    {entry['message']}")
        needed = entry["evidence"].get("outcomesNeeded")
        if entry["verdict"] == Verdict.INCONCLUSIVE and isinstance(needed, int):
            unit = entry["evidence"].get("outcomeUnit", "outcomes")
            lines.append(f"    outcomes still needed: about {needed} more {unit} per group")
        elif entry["reason"] in ("BreachNotConfirmed", "NotDemonstrated") and (
            "outcomesNeeded" not in (entry["evidence"].get("suppressed") or [])
        ):
            lines.append("    outcomes still needed: no number decides it at the current rates")
    if "scores" in report:
        lines += render_scores(report["scores"])
    if any(block["suppressed"] for groups in metrics.values() for block in groups.values()):
        lines.append("")
        lines.append(f"{_HIDDEN}: hidden, because a count from 1 to 10 could be derived from it")
    return "\n".join(lines) + "\n"


def _cell(block: Mapping[str, Any], metric: str) -> str:
    value = block[metric]
    if value is None:
        return _HIDDEN if metric in block["suppressed"] else "n/a"
    return f"{value:.3f}"


def _interval(bounds: object) -> str:
    if not isinstance(bounds, list):
        return "n/a"
    low, high = bounds
    return f"{low:.3f}-{'inf' if high is None else f'{high:.3f}'}"
