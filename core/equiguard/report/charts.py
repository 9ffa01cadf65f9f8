"""The report's charts: an SLO's compared quantity and each group's metric over time,
as inline SVG (`svg`), drawn with the engine's comparison (its scale and threshold
lines) and marked where revisions started serving and where a rollback happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from equiguard.engine.comparison import Comparison
from equiguard.engine.verdict import Verdict
from equiguard.report import svg

# Axis labels must be short; the headings above the charts say it in full.
METRIC_SHORT = {"selectionRate": "selection rate", "tpr": "TPR", "fpr": "FPR", "fnr": "FNR",
                "tnr": "TNR", "ppv": "PPV", "npv": "NPV", "prevalence": "prevalence",
                "brier": "Brier score", "ece": "ECE", "observedExpectedRatio": "O/E ratio",
                "auroc": "AUROC", "netBenefit": "net benefit",
                "calibrationIntercept": "cal. intercept", "calibrationSlope": "cal. slope"}
VERDICT_COLOURS: dict[str, str] = {
    Verdict.MET: "#1a7f37", Verdict.VIOLATED: "#cf222e", Verdict.INCONCLUSIVE: "#6e7781"
}


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _markers(content: Mapping[str, Any]) -> list[svg.Marker]:
    """When each revision started serving, and each rollback."""
    markers = [svg.Marker(moment(r["firstServed"]), r["revision"]) for r in content["revisions"]]
    markers += [svg.Marker(moment(d["time"]), f"rollback to {d['targetRevision']}")
                for d in content["decisions"] if d["decision"] == "Rollback" and not d["dryRun"]]
    return markers


def threshold_rules(slo: Mapping[str, Any]) -> list[svg.Rule]:
    lines = _compared(slo).threshold_lines()
    rules = [svg.Rule(lines[0], f"threshold {slo['threshold']}")]
    rules += [svg.Rule(line, f"1/threshold {line:.3g}") for line in lines[1:]]
    return rules


def _axis_label(slo: Mapping[str, Any]) -> str:
    return _compared(slo).axis(METRIC_SHORT.get(slo["metric"], slo["metric"]))


def _compared(slo: Mapping[str, Any]) -> Comparison:
    return Comparison(slo["comparison"], float(slo["threshold"]))


def _span(slo: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """The time axis of an SLO's charts: from its first to its last evaluation."""
    times = [moment(e["time"]) for e in slo["evaluations"]]
    return (min(times), max(times)) if times else None


def summary_chart(slo: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    points = tuple(
        svg.Point(
            time=moment(e["time"]),
            estimate=e["estimate"],
            lower=e["lower"],
            upper=e["upper"],
            title=(f"{e['time']} · {e['verdict']} · {e['estimate']}"
                   + (f" ({e['lower']} to {e['upper']})" if e["lower"] is not None else "")
                   + (f" · {e['worstGroup']}" if e["worstGroup"] else "")
                   + f" · {e['revision']}"),
            colour=VERDICT_COLOURS.get(e["verdict"], "#8c959f"),
        )
        for e in slo["evaluations"]
        if e["estimate"] is not None
    )
    if not points:
        return '<p class="note">No estimate recorded yet for this SLO.</p>'
    verdicts = [v for v in VERDICT_COLOURS if any(e["verdict"] == v for e in slo["evaluations"])]
    return svg.time_chart(
        f"{slo['name']}: {slo['comparedQuantity']} over time",
        [svg.Series(slo["comparedQuantity"], "#6e7781", points)],
        _axis_label(slo),
        rules=threshold_rules(slo),
        markers=_markers(content),
        span=_span(slo),
        legend=[(v, VERDICT_COLOURS[v]) for v in verdicts],
    )


def group_chart(slo: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    by_group: dict[str, list[svg.Point]] = {}
    for evaluation in slo["evaluations"]:
        for g in evaluation["groups"]:
            if g["estimate"] is None:
                continue
            interval = f" ({g['lower']} to {g['upper']})" if g["lower"] is not None else ""
            by_group.setdefault(g["group"], []).append(svg.Point(
                time=moment(evaluation["time"]),
                estimate=g["estimate"],
                lower=g["lower"],
                upper=g["upper"],
                title=f"{g['group']} · {evaluation['time']} · {g['estimate']}{interval} · "
                      f"n {g['n']}",
            ))
    if not by_group:
        return '<p class="note">No per-group values recorded yet for this SLO.</p>'
    colours = svg.group_colours(list(by_group))
    series = [svg.Series(group, colours[group], tuple(points))
              for group, points in by_group.items()]
    rules = threshold_rules(slo) if slo["comparison"] == "floor" else []
    return svg.time_chart(
        f"{slo['name']}: {slo['metricName']} by {slo['attribute']} group over time",
        series, METRIC_SHORT.get(slo["metric"], slo["metric"]), rules=rules,
        markers=_markers(content), span=_span(slo),
    )
