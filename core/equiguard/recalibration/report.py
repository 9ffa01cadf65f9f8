"""The impact assessment: what a recalibration would change, as JSON and as a summary.

Everything here leaves the pod (the result ConfigMap, the decision record), so
every metrics block and verdict passes through the engine's small-cell
suppression, and a count from 1 to 10 is never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from equiguard.contracts.change_control import Envelope
from equiguard.engine.metrics import MetricTable, metrics_report
from equiguard.engine.slo import SloVerdict
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import is_small, suppress_small_cells
from equiguard.recalibration.assess import Assessment
from equiguard.recalibration.decide import Candidate, Decision

FORMAT = "equiguard.recalibration-assessment/v1"
_SUMMARY_METRICS = (("tpr", "TPR"), ("ece", "ECE"), ("brier", "Brier"), ("auroc", "AUROC"),
                    ("observedExpectedRatio", "O/E"))  # fmt: skip


@dataclass(frozen=True)
class Context:
    """What the assessment is about, beyond the decision itself."""

    model: str
    namespace: str
    serving_revision: str
    candidate_revision: str | None
    slo: str | None
    dimension: str
    since: float
    until: float
    envelope: Envelope
    layout: CellLayout


def assessment_document(decision: Decision, context: Context) -> dict[str, Any]:
    """The impact assessment, format equiguard.recalibration-assessment/v1."""
    before = (
        _published(decision.serving, decision.serving_verdicts, context.layout)
        if decision.serving is not None
        else None
    )
    return {
        "format": FORMAT,
        "model": {"name": context.model, "namespace": context.namespace},
        "servingRevision": context.serving_revision,
        "candidateRevision": context.candidate_revision,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "message": decision.message,
        "trigger": {"slo": context.slo, "dimension": context.dimension},
        "time": _iso(context.until),
        "window": {
            "start": _iso(context.since),
            "end": _iso(context.until),
            "holdoutStart": None if decision.split_time is None else _iso(decision.split_time),
        },
        "outcomes": {
            "fit": _count(decision.fit_outcomes),
            "holdout": _count(decision.holdout_outcomes),
        },
        "envelope": context.envelope.to_dict(),
        "before": before,
        "candidates": [_candidate(c, context.layout) for c in decision.candidates],
    }


def _candidate(candidate: Candidate, layout: CellLayout) -> dict[str, Any]:
    fit = candidate.fit
    entry: dict[str, Any] = {
        "method": fit.method,
        "fit": {
            "reason": fit.reason,
            "message": fit.message,
            "groups": [
                {"group": g.group, "changed": g.changed, "reason": g.reason, "detail": g.detail}
                for g in fit.groups
            ],
        },
        "calibration": None if fit.layer is None else fit.layer.to_dict(),
        "held": None,
        "criteria": [],
        "notJudged": [],
        "after": None,
    }
    assessment = candidate.assessment
    if assessment is not None:
        entry["held"] = assessment.held
        entry["criteria"] = _criteria(assessment)
        entry["notJudged"] = [list(cell) for cell in assessment.not_judged]
        entry["after"] = _published(assessment.after, assessment.verdicts_after, layout)
    return entry


def _criteria(assessment: Assessment) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "limit": c.limit,
            "held": c.held,
            "message": c.message,
            "checks": [
                {
                    "dimension": k.dimension,
                    "group": k.group,
                    "before": k.before,
                    "after": k.after,
                    "held": k.held,
                    "interval": None if k.interval is None else list(k.interval),
                }
                for k in c.checks
            ],
        }
        for c in assessment.criteria
    ]


def _published(
    table: MetricTable, verdicts: Mapping[str, SloVerdict], layout: CellLayout
) -> dict[str, Any]:
    report = {
        "metrics": metrics_report(table),
        "slos": {name: v.to_dict() for name, v in verdicts.items()},
    }
    return suppress_small_cells(report, layout)


def summary(document: Mapping[str, Any]) -> str:
    """A readable Markdown summary of an assessment document."""
    lines = [
        f"# Recalibration of {document['model']['name']} ({document['servingRevision']})",
        "",
        f"**{document['outcome']}** ({document['reason']})"
        + (f": {document['candidateRevision']}" if document["candidateRevision"] else ""),
        "",
        document["message"],
        "",
        f"Window {document['window']['start']} to {document['window']['end']}; "
        f"fitted on {_shown(document['outcomes']['fit'])} outcomes, judged on "
        f"{_shown(document['outcomes']['holdout'])} held-out outcomes"
        + _from(document["window"]["holdoutStart"]),
        f"Recalibrated dimension: {document['trigger']['dimension']}"
        + (f" (SLO {document['trigger']['slo']})." if document["trigger"]["slo"] else "."),
    ]
    dimension = document["trigger"]["dimension"]
    before = document["before"]
    for candidate in document["candidates"]:
        lines += ["", f"## {candidate['method']}", "", candidate["fit"]["message"] + ".", ""]
        lines += ["| group | changed | why |", "|---|---|---|"]
        lines += [
            f"| {g['group']} | {'yes' if g['changed'] else 'no'} | {g['detail'] or g['reason']} |"
            for g in candidate["fit"]["groups"]
        ]
        if candidate["held"] is None:
            continue
        lines += ["", "| criterion | limit | held | detail |", "|---|---|---|---|"]
        lines += [
            f"| {c['name']} | {'' if c['limit'] is None else c['limit']} | "
            f"{'yes' if c['held'] else 'NO'} | {c['message']} |"
            for c in candidate["criteria"]
        ]
        lines += ["", *_group_table(before, candidate["after"], dimension)]
        lines += ["", "| SLO | serving | candidate |", "|---|---|---|"]
        lines += [
            f"| {name} | {before['slos'][name]['verdict']} | {entry['verdict']} |"
            for name, entry in candidate["after"]["slos"].items()
        ]
    return "\n".join(lines) + "\n"


def _group_table(before: Mapping[str, Any], after: Mapping[str, Any], dimension: str) -> list[str]:
    heading = " | ".join(label for _, label in _SUMMARY_METRICS)
    lines = [
        f"Held-out {dimension} groups, serving -> candidate (95% interval of the candidate):",
        "",
        f"| group | n | {heading} |",
        "|---|---|" + "---|" * len(_SUMMARY_METRICS),
    ]
    for group, old in before["metrics"][dimension].items():
        new = after["metrics"][dimension][group]
        cells = []
        for metric, _ in _SUMMARY_METRICS:
            interval = new["intervals"].get(metric)
            bounds = f" [{interval[0]:.3f}, {_num(interval[1])}]" if interval else ""
            cells.append(f"{_num(old[metric])} -> {_num(new[metric])}{bounds}")
        lines.append(f"| {group} | {_shown(old['n'])} | {' | '.join(cells)} |")
    return lines


def _from(start: str | None) -> str:
    return f" from {start}." if start else "."


def _num(value: object) -> str:
    return "--" if not isinstance(value, int | float) else f"{value:.3f}"


def _shown(value: object) -> str:
    return "--" if value is None else str(value)


def _count(n: int) -> int | None:
    return None if is_small(n) else n


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
