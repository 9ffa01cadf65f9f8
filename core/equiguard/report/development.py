"""Fairness assessed in development: the engine's audit of held-out scored records.

The records file is the one `equiguard audit` reads (CSV or JSON lines with
score, label and the subgroup columns). It is audited with the model's own
subgroups and SLOs, small cells suppressed by the engine, and only the
figures of each SLO (its verdict and its metric in each group) are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from equiguard.contracts.records import GroupPoint
from equiguard.contracts.status import read_number
from equiguard.engine import audit, scored_records
from equiguard.engine.metrics import DENOMINATOR
from equiguard.engine.spec import parse_model
from equiguard.engine.verdict import read_verdict
from equiguard.report.material import DevelopmentAssessment, DevelopmentSlo


def _interval(value: object) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return read_number(value[0]), read_number(value[1])
    return None, None


def _groups(metrics: Mapping[str, Any], metric: str, attribute: str) -> tuple[GroupPoint, ...]:
    points = []
    for group, block in metrics.get(attribute, {}).items():
        lower, upper = _interval((block.get("intervals") or {}).get(metric))
        denominator = DENOMINATOR.get(metric, "n")
        count = block.get(denominator)
        # The engine names what it withheld in each group; the group is hidden here
        # when the metric or its denominator is among them.
        withheld = set(block.get("suppressed") or ())
        points.append(
            GroupPoint(
                group=group,
                estimate=read_number(block.get(metric)),
                lower=lower,
                upper=upper,
                n=count if isinstance(count, int) and not isinstance(count, bool) else None,
                suppressed=bool(withheld & {metric, denominator}),
            )
        )
    return tuple(points)


def from_audit(
    audit_report: Mapping[str, Any], manifest: Mapping[str, Any], source: str
) -> DevelopmentAssessment:
    """The assessment in a suppressed `equiguard audit` report (its JSON format)."""
    spec = parse_model(manifest)
    metrics = audit_report.get("metrics", {})
    slos = []
    for slo in spec.slos:
        entry = audit_report.get("slos", {}).get(slo.name, {})
        evidence = entry.get("evidence", {})
        lower, upper = _interval(evidence.get("interval"))
        slos.append(
            DevelopmentSlo(
                name=slo.name,
                verdict=read_verdict(entry.get("verdict")),
                reason=str(entry.get("reason", "")),
                message=str(entry.get("message", "")),
                estimate=read_number(evidence.get("estimate")),
                lower=lower,
                upper=upper,
                groups=_groups(metrics, slo.metric, slo.attribute),
            )
        )
    records = audit_report.get("records", {})
    rows = records.get("rows")
    return DevelopmentAssessment(
        source=source,
        rows=rows if isinstance(rows, int) else None,
        first=str(records.get("from") or ""),
        last=str(records.get("to") or ""),
        confidence=float(audit_report.get("confidence", 0.95)),
        slos=tuple(slos),
        utility=_utility(metrics, audit_report.get("decisionCurve") or {}),
    )


UTILITY_METRICS = (
    "netBenefit",
    "calibrationSlope",
    "calibrationIntercept",
    "observedExpectedRatio",
)


def _utility(metrics: Mapping[str, Any], curve: Mapping[str, Any]) -> dict[str, Any]:
    """Each group's utility and calibration metrics with intervals, and the decision curve."""
    groups = {
        dimension: {
            group: {
                m: {
                    "value": read_number(block.get(m)),
                    "interval": list(_interval((block.get("intervals") or {}).get(m))),
                }
                for m in UTILITY_METRICS
            }
            for group, block in blocks.items()
        }
        for dimension, blocks in metrics.items()
    }
    return {"groups": groups, "decisionCurve": dict(curve)}


def assess(
    manifest: Mapping[str, Any], records_path: str, confidence: float = 0.95
) -> DevelopmentAssessment:
    """Audits the records file with the model's subgroups and SLOs (RecordError if bad)."""
    spec = parse_model(manifest)
    records = scored_records.read_records(records_path, spec)
    report = audit.build_report(spec, records, confidence, suppress=True)
    return from_audit(report, manifest, Path(records_path).name)
