"""What fills a source attribute: the model owner's text, or evidence the cluster holds.

An attribute set (`hti`, `eu_art13`) lists the attributes a rule asks for, in
the rule's own categories. Every item says where its value came from
(`origin`: ClinicalModel spec, measured, model owner, missing) and which
evidence filled it (`evidence`: the spec's fields, the operator's last
evaluation, the development assessment, the owner's file), so a reader can
check each value against its source. What only the developer knows is never
guessed: without the owner's text the item says it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.report.material import ReportInput

OWNER_FILE = "the source-attributes file"


@dataclass(frozen=True)
class Filled:
    """A value the cluster provides, with the evidence it was read from."""

    text: str
    evidence: str


def item(category: str, attribute: str, value: str, origin: str, evidence: str) -> dict[str, str]:
    return {
        "category": category,
        "attribute": attribute,
        "value": value,
        "origin": origin,
        "evidence": evidence,
    }


def filled_item(category: str, attribute: str, filled: Filled, origin: str) -> dict[str, str]:
    return item(category, attribute, filled.text, origin, filled.evidence)


def owner_item(
    keys: Mapping[str, tuple[str, str]],
    key: str,
    provided: Mapping[str, str],
    addition: Filled | None = None,
) -> dict[str, str]:
    """The owner's text for `key` (of a set's `keys`: key -> (category, attribute)),
    followed by what was measured when there is some."""
    category, attribute = keys[key]
    text = provided.get(key, "").strip()
    owner = f"{OWNER_FILE} ({key})"
    if text and addition:
        return item(category, attribute, f"{text}\n\n{addition.text}", "model owner; measured",
                    f"{owner}; {addition.evidence}")  # fmt: skip
    if text:
        return item(category, attribute, text, "model owner", owner)
    if addition:
        return filled_item(category, attribute, addition, "measured")
    return item(category, attribute,
                f"Not provided: the model owner supplies it as `{key}` in the source-attributes "
                "file.", "missing", "none")  # fmt: skip


def intended_use(report: ReportInput, category: str, attribute: str) -> dict[str, str]:
    declared = report.model.intended_use
    if declared:
        return item(category, attribute, declared, "ClinicalModel spec", "spec.intendedUse")
    return item(category, attribute, "Not declared in spec.intendedUse.", "missing", "none")


def monitoring(report: ReportInput) -> Filled:
    model = report.model
    attributes = ", ".join(a.name for a in model.subgroups.attributes)
    intersections = ", ".join(i.name for i in model.subgroups.intersections)
    slos = "".join(
        f"\n- {s.name}: {s.metric} by {s.attribute} ({s.comparison}, threshold {s.threshold}, "
        f"{s.window} window, at least {s.min_samples} per group, {s.confidence} confidence, "
        f"{s.consecutive_breaches} consecutive breaches, action {s.action})"
        for s in model.slos
    )
    text = (
        f"Every prediction served is recorded with the patient's subgroups ({attributes}"
        + (f"; intersections {intersections}" if intersections else "")
        + ") and joined with the observed outcome when it arrives. The operator evaluates "
        f"{len(model.slos)} equity SLOs every {model.monitoring.interval} on the statistics of "
        "all serving pods. Too few labelled outcomes in a group make a verdict Inconclusive, "
        "which never counts as met. Every change of verdict and every action is written as an "
        f"immutable decision record. Enforcement: {model.enforcement}.{slos}"
    )
    return Filled(text, "spec.subgroups, spec.slos, spec.monitoring, spec.enforcement")


def last_results(content: Mapping[str, Any]) -> Filled:
    state = content["state"]
    evaluated = state.get("lastEvaluationTime")
    if not evaluated:
        return Filled(
            "Not evaluated yet: the operator has not written a verdict for this model.",
            "status (no evaluation yet)",
        )
    lines = [f"Last evaluation {evaluated} on revision "
             f"{state.get('servingRevision') or 'unknown'}:"]  # fmt: skip
    for slo in content["slos"]:
        current = slo.get("current")
        if current is None:
            lines.append(f"- {slo['name']}: not evaluated yet.")
            continue
        figure = ""
        if current.get("estimate") is not None:
            figure = f" {slo['comparedQuantity']} {current['estimate']}"
            if current.get("lower") is not None and current.get("upper") is not None:
                figure += f" (interval {current['lower']} to {current['upper']})"
            if current.get("worstGroup"):
                figure += f"; worst: {current['worstGroup']}"
        lines.append(f"- {slo['name']}: {current['verdict']} since {current['since']}.{figure}")
    return Filled("\n".join(lines), f"status.slos of the evaluation at {evaluated}")


def development_results(content: Mapping[str, Any]) -> Filled | None:
    development = content.get("development")
    if not development:
        return None
    rows = development.get("rows")
    records = f"{rows} held-out scored records" if rows is not None else "held-out scored records"
    period = (f" from {development['from']} to {development['to']}"
              if development.get("from") and development.get("to") else "")  # fmt: skip
    verdicts = "; ".join(f"{s['name']}: {s['verdict']}" for s in development["slos"])
    return Filled(
        f"Assessed by equiguard's engine on {records}{period} ({development['source']}), "
        f"with the same SLOs as in deployment: {verdicts}. Per-group results are in the "
        "development assessment section.",
        f"development assessment of {development['source']}",
    )


def corrections(report: ReportInput) -> Filled:
    model = report.model
    actions = ", ".join(f"{s.name} → {s.action}" for s in model.slos)
    text = (
        f"A violation is confirmed after the SLO's consecutive breaching evaluations "
        f"(evaluated every {model.monitoring.interval}); then the SLO's action runs: {actions}. "
        "Rollback serves the last revision that met every SLO for the qualification period "
        f"({model.monitoring.qualification_period}) and quarantines the failing one; Alert "
        "records and notifies only. Actions are at least "
        f"{model.monitoring.cooldown} apart and at most {model.monitoring.max_actions_per_day} a "
        "day."
    )
    evidence = "spec.slos[].action, spec.monitoring"
    if model.change_control is not None:
        text += " " + change_control(report).text
        evidence += ", spec.changeControl"
    if model.enforcement == "DryRun":
        text += " The model runs in DryRun: actions are recorded, not taken."
    return Filled(text, evidence + ", spec.enforcement")


def change_control(report: ReportInput) -> Filled:
    """The changes declared in advance: the recalibration envelope, or that there is none."""
    control = report.model.change_control
    if control is None:
        return Filled(
            "No change-control envelope is declared: the operator never changes the model "
            "itself (spec.changeControl is absent).",
            "spec.changeControl (absent)",
        )
    return Filled(
        f"Recalibration ({', '.join(control.methods)}) is fitted on {control.window} of "
        f"joined outcomes with at least {control.min_outcomes_per_group} per group, at most "
        f"{control.max_recalibrations} per {control.recalibration_period}; a candidate must "
        "pass the declared acceptance criteria per subgroup"
        + (" and a recorded human approval" if control.approval_required else "")
        + " before it serves.",
        "spec.changeControl",
    )


def decision_log(report: ReportInput) -> Filled:
    recorded = len(report.decisions)
    return Filled(
        "Every change of verdict and every action (rollback, recalibration, approval, "
        "promotion) is an immutable EquityDecision record in the model's namespace, with its "
        f"evidence; {recorded} are recorded for this model. `equiguard report` and "
        "`equiguard pccp` read them back.",
        "EquityDecision records of the model",
    )
