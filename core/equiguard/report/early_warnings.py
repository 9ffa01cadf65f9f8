"""The report's early warnings: what fires now, the precision of warnings, and each
warning's estimates beside what the labelled outcomes later showed (pure).

An estimate of a gap names its decisive pair, of a floor its group; the
realised value is the same pair's gap or group's rate in the labelled
verdict that decided the SLO on the warned revision: the evidence of the
decision record with that verdict (every group passing the report's own
suppression first), else the SLO's status when its summary is that same pair
or group. Until then it is "not yet decided". Only shares, rates and
intervals are shown; the tallies count warnings, never patients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from equiguard.contracts.early_warning_status import (
    EstimateShown,
)
from equiguard.contracts.records import StoredDecision
from equiguard.contracts.status import SloStatus, format_time
from equiguard.engine.verdict import Verdict
from equiguard.report.material import ReportInput
from equiguard.report.suppress import HIDDEN_MESSAGE, Checked, involves_hidden

# A record's evidence groups as the report may show them (the content builder's, so a
# record checked for two sections is counted once).
Check = Callable[[StoredDecision], Checked | None]
LABELLED = frozenset({str(Verdict.MET), str(Verdict.VIOLATED)})
NOT_YET = "not yet decided"


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def early_warnings(report: ReportInput, check: Check) -> dict[str, Any] | None:
    """The section's content; None when the model declares no early warning and has none."""
    declared = report.model.early_warning
    status = report.state.early_warning
    raised = [d for d in report.decisions if d.decision == "EarlyWarning" and d.warning]
    if declared is None and status is None and not raised:
        return None
    resolutions = {
        d.warning_resolution.warning_record: d
        for d in report.decisions
        if d.decision == "EarlyWarningResolved" and d.warning_resolution is not None
    }
    tally = status.memory.tally if status is not None else None
    return {
        "declared": declared is not None,
        "action": declared.action if declared is not None else "",
        "current": None
        if status is None
        else {
            "state": status.memory.state,
            "reason": status.reason,
            "message": status.message,
            "since": format_time(status.memory.since) if status.memory.since else None,
            "revision": status.revision,
            "watching": list(status.watching),
            "firing": list(status.firing),
            "holdingRollout": status.holding_rollout,
        },
        "precision": None
        if tally is None
        else {
            "raised": tally.raised,
            "decided": tally.decided,
            "borneOut": tally.borne_out,
            "precision": _round(tally.precision),
        },
        "warnings": [
            _warning(report, record, resolutions.get(record.name), check) for record in raised
        ],
    }


def _warning(
    report: ReportInput, record: StoredDecision, resolved: StoredDecision | None, check: Check
) -> dict[str, Any]:
    evidence = record.warning
    assert evidence is not None
    resolution = resolved.warning_resolution if resolved is not None else None
    return {
        "record": record.name,
        "began": format_time(record.time),
        "revision": record.revision,
        "firing": list(evidence.firing),
        "signalsFired": evidence.signals_fired,
        "reference": evidence.reference_revision,
        "borneOut": resolution.borne_out if resolution is not None else None,
        "resolvedBy": None
        if resolved is None
        else {
            "record": resolved.name,
            "time": format_time(resolved.time),
            "slo": resolved.slo,
            "verdict": resolved.verdict,
        },
        "estimates": [
            _estimate(report, record, resolved, estimate, check)
            # An estimate not judged (too few reference outcomes) has no value to compare.
            for estimate in evidence.estimates
            if estimate.judged
        ],
    }


def _estimate(
    report: ReportInput,
    record: StoredDecision,
    resolved: StoredDecision | None,
    estimate: EstimateShown,
    check: Check,
) -> dict[str, Any]:
    return {
        "slo": estimate.slo,
        "metric": estimate.metric,
        "comparison": estimate.comparison,
        "threshold": estimate.threshold,
        "groups": " vs ".join(estimate.groups),
        "breached": estimate.breached,
        "estimate": _round(estimate.estimate),
        "lower": _round(estimate.lower),
        "upper": _round(estimate.upper),
        "realised": _realised(report, record, resolved, estimate, check),
    }


def _realised(
    report: ReportInput,
    record: StoredDecision,
    resolved: StoredDecision | None,
    estimate: EstimateShown,
    check: Check,
) -> dict[str, Any]:
    """The same pair's gap or group's rate on labels, once the SLO was decided."""
    until = resolved.time if resolved is not None else None
    labelled = [
        d
        for d in report.decisions
        if d.slo == estimate.slo
        and d.revision == record.revision
        and d.evidence is not None
        and d.verdict in LABELLED
        and d.time >= record.time
        and (until is None or d.time <= until)
    ]
    if labelled:
        return _from_evidence(labelled[-1], estimate, check)
    current = next((s for s in report.state.slos if s.name == estimate.slo), None)
    if (
        current is not None
        and current.revision == record.revision
        and str(current.verdict) in LABELLED
        and current.since >= record.time
    ):
        return _from_status(current, estimate)
    return {"decided": False, "note": NOT_YET}


def _same(groups: tuple[str, ...], summary: str) -> bool:
    return set(groups) == {part.strip() for part in summary.split(" vs ") if part.strip()}


def _figure(
    decided_by: dict[str, Any], value: float | None, lower: float | None, upper: float | None
) -> dict[str, Any]:
    return {**decided_by, "estimate": _round(value), "lower": _round(lower),
            "upper": _round(upper)}  # fmt: skip


def _from_evidence(
    decision: StoredDecision, estimate: EstimateShown, check: Check
) -> dict[str, Any]:
    evidence = decision.evidence
    assert evidence is not None
    decided_by = {
        "decided": True,
        "verdict": decision.verdict,
        "source": "decision record",
        "record": decision.name,
        "time": format_time(decision.time),
    }
    checked = check(decision)
    assert checked is not None
    if involves_hidden(" vs ".join(estimate.groups), checked.hidden):
        return {**decided_by, "hidden": True, "note": HIDDEN_MESSAGE}
    if estimate.comparison == "maxGap" and _same(estimate.groups, evidence.worst_group):
        return _figure(decided_by, evidence.estimate, evidence.lower, evidence.upper)
    by_group = {p.group: p for p in checked.groups}
    points = [by_group.get(g) for g in estimate.groups]
    shown = [p for p in points if p is not None and p.estimate is not None]
    if estimate.comparison == "floor" and len(shown) == 1:
        return _figure(decided_by, shown[0].estimate, shown[0].lower, shown[0].upper)
    if estimate.comparison == "maxGap" and len(shown) == 2:
        first, second = (p.estimate or 0.0 for p in shown)
        # The pair's gap from its two groups; the record's interval is only of its own pair.
        return _figure(decided_by, first - second, None, None)
    return {**decided_by, "note": "the record has no value for this group or pair"}


def _from_status(current: SloStatus, estimate: EstimateShown) -> dict[str, Any]:
    decided_by = {
        "decided": True,
        "verdict": str(current.verdict),
        "source": "status",
        "record": "",
        "time": format_time(current.since),
    }
    if not _same(estimate.groups, current.worst_group):
        return {**decided_by, "note": f"decided on {current.worst_group or 'another group'}; "
                "the status keeps no value for this group or pair"}  # fmt: skip
    return _figure(decided_by, current.estimate, current.lower, current.upper)
