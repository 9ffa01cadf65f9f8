"""The report's content: one JSON-ready mapping that both renderings show.

`build_content` is pure (the report's time is in its input). Every group value
passes `suppress.check_groups` on its way in; the HTML renderer reads nothing
but this mapping, so the HTML and the JSON cannot say different things.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.model import SloAction
from equiguard.contracts.records import GroupPoint, StoredDecision
from equiguard.contracts.status import format_time
from equiguard.engine.metrics import DENOMINATOR
from equiguard.engine.suppression import SMALLEST_SHOWN, is_small
from equiguard.report import attribute_sets
from equiguard.report.checklists import checklists
from equiguard.report.early_warnings import early_warnings
from equiguard.report.material import DevelopmentAssessment, ModelInfo, ReportInput
from equiguard.report.suppress import HIDDEN_MESSAGE, Checked, check_groups, involves_hidden
from equiguard.report.wording import (
    DENOMINATOR_NAMES,
    compared_quantity,
    metric_name,
    statement,
)

FORMAT = "equiguard.report/v1"

# The decisions that end a recalibration Job: each has a change record.
CHANGE_DECISIONS = frozenset({"RecalibrationPublished", "RecalibrationRefused"})


def _time(moment: datetime | None) -> str | None:
    return format_time(moment) if moment is not None else None


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _groups(checked: Checked) -> list[dict[str, Any]]:
    return [
        {
            "group": point.group,
            "estimate": _round(point.estimate),
            "lower": _round(point.lower),
            "upper": _round(point.upper),
            "n": point.n,
            "hidden": point.suppressed,
        }
        for point in checked.groups
    ]


class _Builder:
    """Builds the content of one report; counts what suppression hid on the way."""

    def __init__(self, report: ReportInput) -> None:
        self.report = report
        self.model = report.model
        self.hidden_values = 0
        self.checked: dict[str, Checked] = {}  # by record name

    def check(self, points: Sequence[GroupPoint], metric: str, attribute: str) -> Checked:
        checked = check_groups(points, metric, attribute, self.model.subgroups)
        self.hidden_values += len(checked.hidden)
        return checked

    def evidence_of(self, decision: StoredDecision) -> Checked | None:
        if decision.evidence is None:
            return None
        if decision.name not in self.checked:
            evidence = decision.evidence
            self.checked[decision.name] = self.check(evidence.groups, evidence.metric,
                                                     evidence.attribute)
        return self.checked[decision.name]

    def newly_hidden(self, decision: StoredDecision) -> bool:
        """Whether this report hides a group the record's own summary rests on."""
        checked = self.evidence_of(decision)
        if checked is None or decision.evidence is None:
            return False
        already = {p.group for p in decision.evidence.groups if p.suppressed}
        return involves_hidden(decision.evidence.worst_group, checked.hidden - already)

    def decision(self, decision: StoredDecision) -> dict[str, Any]:
        message = decision.message
        if self.newly_hidden(decision):
            message = (f"{decision.decision} ({decision.reason}): SLO {decision.slo} is "
                       f"{decision.verdict}; {HIDDEN_MESSAGE}.")
        return {
            "record": decision.name,
            "time": format_time(decision.time),
            "decision": decision.decision,
            "reason": decision.reason,
            "message": message,
            "slo": decision.slo,
            "verdict": decision.verdict,
            "previousVerdict": decision.previous_verdict,
            "revision": decision.revision,
            "targetRevision": decision.target_revision,
            "job": decision.job,
            # The change record `equiguard pccp` writes for this Job, beside the report.
            "changeRecord": (names.change_record_file(decision.model, decision.job)
                             if decision.job and decision.decision in CHANGE_DECISIONS else ""),
            "dryRun": decision.dry_run,
            "enforcement": decision.enforcement,
            "generation": decision.generation,
            "approval": is_approval(decision),
            "approvedBy": decision.approval.by if decision.approval else "",
            "approvalReason": decision.approval.reason if decision.approval else "",
            "approvedAt": decision.approval.time if decision.approval else "",
        }

    def evaluations(self, slo: SloAction) -> list[dict[str, Any]]:
        """The SLO's estimates over time: each recorded decision's evidence, then status."""
        points: list[dict[str, Any]] = []
        seen: set[str] = set()
        for decision in self.report.decisions:
            evidence = decision.evidence
            when = format_time(decision.time)
            if decision.slo != slo.name or evidence is None or when in seen:
                continue
            seen.add(when)
            checked = self.evidence_of(decision)
            assert checked is not None
            hide_summary = involves_hidden(evidence.worst_group, checked.hidden)
            points.append({
                "time": when,
                "source": "decision record",
                "record": decision.name,
                "verdict": decision.verdict,
                "revision": decision.revision,
                "window": evidence.window,
                "worstGroup": evidence.worst_group,
                "estimate": None if hide_summary else _round(evidence.estimate),
                "lower": None if hide_summary else _round(evidence.lower),
                "upper": None if hide_summary else _round(evidence.upper),
                "groups": _groups(checked),
            })
        current = next((s for s in self.report.state.slos if s.name == slo.name), None)
        last = self.report.state.last_evaluation
        if current is not None and last is not None and format_time(last) not in seen:
            points.append({
                "time": format_time(last),
                "source": "status",
                "record": "",
                "verdict": current.verdict,
                "revision": current.revision,
                "window": slo.window,
                "worstGroup": current.worst_group,
                "estimate": _round(current.estimate),
                "lower": _round(current.lower),
                "upper": _round(current.upper),
                "groups": [],
            })
        return points

    def slo(self, slo: SloAction) -> dict[str, Any]:
        current = next((s for s in self.report.state.slos if s.name == slo.name), None)
        return {
            "name": slo.name,
            "metric": slo.metric,
            "metricName": metric_name(slo.metric),
            "attribute": slo.attribute,
            "comparison": slo.comparison,
            "reference": slo.reference,
            "threshold": slo.threshold,
            "window": slo.window,
            "minSamples": slo.min_samples,
            "minSamplesOf": DENOMINATOR_NAMES.get(DENOMINATOR.get(slo.metric, "n"), ""),
            "confidence": slo.confidence,
            "consecutiveBreaches": slo.consecutive_breaches,
            "action": slo.action,
            "statement": statement(slo),
            "comparedQuantity": compared_quantity(slo),
            "current": None if current is None else {
                "verdict": current.verdict,
                "reason": current.reason,
                "message": current.message,
                "since": format_time(current.since),
                "revision": current.revision,
                "worstGroup": current.worst_group,
                "estimate": _round(current.estimate),
                "lower": _round(current.lower),
                "upper": _round(current.upper),
                "breaches": current.breaches,
                "heldBack": current.held_back,
                "outcomesNeeded": current.outcomes_needed,
            },
            "history": [self.decision(d) for d in self.report.decisions if d.slo == slo.name],
            "evaluations": self.evaluations(slo),
        }

    def development(self, assessment: DevelopmentAssessment) -> dict[str, Any]:
        by_name = {slo.name: slo for slo in self.model.slos}
        slos = []
        for item in assessment.slos:
            spec = by_name.get(item.name)
            checked = self.check(item.groups, spec.metric if spec else "",
                                 spec.attribute if spec else "")
            slos.append({
                "name": item.name,
                "verdict": item.verdict,
                "reason": item.reason,
                "message": item.message,
                "estimate": _round(item.estimate),
                "lower": _round(item.lower),
                "upper": _round(item.upper),
                "groups": _groups(checked),
            })
        rows = assessment.rows
        return {
            "source": assessment.source,
            "rows": None if rows is None or is_small(rows) else rows,
            "from": assessment.first,
            "to": assessment.last,
            "confidence": assessment.confidence,
            "slos": slos,
            "utility": dict(assessment.utility),
        }

    def revisions(self, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        state = self.report.state
        out = []
        for record in state.revisions:
            roles = [role for role, tag in (("serving", state.serving),
                                             ("requested by the spec", state.desired),
                                             ("last good", state.last_good))
                     if tag == record.revision]
            out.append({
                "revision": record.revision,
                "image": record.image,
                "generation": record.generation,
                "firstServed": format_time(record.first_served),
                "lastServed": format_time(record.last_served),
                "metSince": _time(record.met_since),
                "qualifiedAt": _time(record.qualified_at),
                "quarantinedAt": _time(record.quarantined_at),
                "quarantineReason": record.quarantine_reason,
                "evaluations": record.evaluations,
                "evaluationsWithViolation": record.violations,
                "roles": roles,
                "decisions": [d["record"] for d in decisions
                              if record.revision in (d["revision"], d["targetRevision"])],
            })
        return out


def is_approval(decision: StoredDecision) -> bool:
    """A record of a human approval (`equiguard approve`): it carries one, or names one."""
    named = "approv" in f"{decision.decision} {decision.reason}".lower()
    return decision.approval is not None or named


def _model(model: ModelInfo) -> dict[str, Any]:
    control = model.change_control
    return {
        "name": model.name,
        "namespace": model.namespace,
        "uid": model.uid,
        "generation": model.generation,
        "created": _time(model.created),
        "intendedUse": model.intended_use,
        "owners": [{"name": o.name, "email": o.email} for o in model.owners],
        "bento": model.bento,
        "image": model.image,
        "replicas": model.replicas,
        "scorePath": model.score_path,
        "threshold": model.threshold,
        "enforcement": model.enforcement,
        "monitoring": {
            "interval": model.monitoring.interval,
            "qualificationPeriod": model.monitoring.qualification_period,
            "cooldown": model.monitoring.cooldown,
            "maxActionsPerDay": model.monitoring.max_actions_per_day,
        },
        "latestApproval": None if model.latest_approval is None else {
            "revision": model.latest_approval.revision,
            "by": model.latest_approval.by,
            "reason": model.latest_approval.reason,
            "time": model.latest_approval.time,
        },
        "changeControl": None if control is None else {
            "methods": list(control.methods),
            "window": control.window,
            "minOutcomesPerGroup": control.min_outcomes_per_group,
            "approvalRequired": control.approval_required,
            "maxRecalibrations": control.max_recalibrations,
            "recalibrationPeriod": control.recalibration_period,
            "acceptance": dict(control.acceptance),
        },
    }


def _subgroups(model: ModelInfo) -> dict[str, Any]:
    sources = {s.name: s.source for s in model.sources}
    return {
        "attributes": [
            {"name": a.name, "source": sources.get(a.name, ""), "groups": list(a.groups)}
            for a in model.subgroups.attributes
        ],
        "intersections": [
            {"name": i.name, "of": list(i.of), "groups": list(i.groups)}
            for i in model.subgroups.intersections
        ],
    }


def build_content(report: ReportInput) -> dict[str, Any]:
    """Everything the report says, small cells suppressed."""
    builder = _Builder(report)
    state = report.state
    decisions = [builder.decision(d) for d in report.decisions]
    content: dict[str, Any] = {
        "format": FORMAT,
        "generatedAt": format_time(report.generated_at),
        "model": _model(report.model),
        "state": {
            "servingRevision": state.serving,
            "desiredRevision": state.desired,
            "lastGoodRevision": state.last_good,
            "sloSummary": state.slo_summary,
            "worstGap": state.worst_gap,
            "lastAction": state.last_action,
            "lastEvaluationTime": _time(state.last_evaluation),
            "conditions": [
                {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                 "lastTransitionTime": format_time(c.last_transition)}
                for c in state.conditions
            ],
        },
        "subgroups": _subgroups(report.model),
        "slos": [builder.slo(slo) for slo in report.model.slos],
        "revisions": builder.revisions(decisions),
        "decisions": decisions,
        "earlyWarnings": early_warnings(report, builder.evidence_of),
        "development": (builder.development(report.development)
                        if report.development is not None else None),
    }
    chosen = attribute_sets.attribute_set(report.attribute_set or attribute_sets.DEFAULT)
    content["attributeSet"] = {"name": chosen.name, "title": chosen.title, "basis": chosen.basis}
    content["sourceAttributes"] = chosen.fill(report, content)
    content["checklists"] = checklists(content)
    content["suppression"] = {
        "smallestCountShown": SMALLEST_SHOWN,
        "hiddenGroupValues": builder.hidden_values,
        "rule": (f"Counts from 1 to {SMALLEST_SHOWN - 1} are never shown, nor any value from "
                 "which one could be derived: such a group's estimate, interval and count are "
                 "withheld, and so is a second group's wherever one hidden count could otherwise "
                 "be recovered from a total."),
    }
    return content
