"""The fairness-related source attributes of a predictive decision support intervention.

The ONC HTI-1 final rule (45 CFR 170.315(b)(11)(iv)(B)) lists source
attributes that certified health IT must let users review for a predictive
DSI, in nine categories. This module fills in the ones about fairness: what
the cluster knows is measured or declared (how fairness is monitored and how
often, the last results in local data, how the model is corrected); what only
the developer knows (how fairness was handled and assessed in development)
comes from the owner's source-attributes file, and is marked missing when
absent rather than guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from equiguard.report.material import ReportInput

# Owner-provided attributes: file key -> (category, attribute).
OWNER_KEYS: dict[str, tuple[str, str]] = {
    "inputFeatures": (
        "(4) Intervention development details and input features",
        "Use of race, ethnicity, language, sexual orientation, gender identity, sex, date of "
        "birth, social determinants of health and health status assessments as input features",
    ),
    "demographicRepresentativeness": (
        "(4) Intervention development details and input features",
        "Demographic representativeness of the training data",
    ),
    "fairnessApproach": (
        "(5) Process used to ensure fairness in development",
        "Approach taken to ensure that the intervention's output is fair",
    ),
    "biasManagement": (
        "(5) Process used to ensure fairness in development",
        "Approaches to manage, reduce or eliminate bias",
    ),
    "externalValidation": (
        "(6) External validation process",
        "Data source, setting and party of an external assessment of validity and fairness",
    ),
    "developmentFairness": (
        "(7) Quantitative measures of performance",
        "Fairness in test data from the same source as the training data",
    ),
    "externalFairness": (
        "(7) Quantitative measures of performance",
        "Fairness in data external to the training data's source",
    ),
    "updateProcess": (
        "(9) Update and continued validation or fairness assessment schedule",
        "Process and frequency by which the intervention is updated",
    ),
}
CATEGORY_ORDER = (
    "(2) Purpose of the intervention",
    "(4) Intervention development details and input features",
    "(5) Process used to ensure fairness in development",
    "(6) External validation process",
    "(7) Quantitative measures of performance",
    "(8) Ongoing maintenance of intervention implementation and use",
    "(9) Update and continued validation or fairness assessment schedule",
)


def _item(category: str, attribute: str, value: str, origin: str) -> dict[str, str]:
    return {"category": category, "attribute": attribute, "value": value, "origin": origin}


def _owner_item(key: str, provided: Mapping[str, str], addition: str = "") -> dict[str, str]:
    category, attribute = OWNER_KEYS[key]
    text = provided.get(key, "").strip()
    if text and addition:
        return _item(category, attribute, f"{text}\n\n{addition}", "model owner; measured")
    if text:
        return _item(category, attribute, text, "model owner")
    if addition:
        return _item(category, attribute, addition, "measured")
    return _item(category, attribute,
                 f"Not provided: the model owner supplies it as `{key}` in the source-attributes "
                 "file.", "missing")


def _monitoring(report: ReportInput) -> str:
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
    return text


def _last_results(content: Mapping[str, Any]) -> str:
    state = content["state"]
    if not state.get("lastEvaluationTime"):
        return "Not evaluated yet: the operator has not written a verdict for this model."
    lines = [f"Last evaluation {state['lastEvaluationTime']} on revision "
             f"{state.get('servingRevision') or 'unknown'}:"]
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
    return "\n".join(lines)


def _development_results(content: Mapping[str, Any]) -> str:
    development = content.get("development")
    if not development:
        return ""
    rows = development.get("rows")
    records = f"{rows} held-out scored records" if rows is not None else "held-out scored records"
    period = (f" from {development['from']} to {development['to']}"
              if development.get("from") and development.get("to") else "")
    verdicts = "; ".join(f"{s['name']}: {s['verdict']}" for s in development["slos"])
    return (f"Assessed by equiguard's engine on {records}{period} ({development['source']}), "
            f"with the same SLOs as in deployment: {verdicts}. Per-group results are in the "
            "development assessment section.")


def _corrections(report: ReportInput) -> str:
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
    control = model.change_control
    if control is not None:
        text += (
            f" Recalibration ({', '.join(control.methods)}) is fitted on {control.window} of "
            f"joined outcomes with at least {control.min_outcomes_per_group} per group, at most "
            f"{control.max_recalibrations} per {control.recalibration_period}; a candidate must "
            "pass the declared acceptance criteria per subgroup"
            + (" and a recorded human approval" if control.approval_required else "")
            + " before it serves."
        )
    if model.enforcement == "DryRun":
        text += " The model runs in DryRun: actions are recorded, not taken."
    return text


def source_attributes(report: ReportInput, content: Mapping[str, Any]) -> list[dict[str, str]]:
    """The fairness-related source attributes, in the rule's category order."""
    provided = dict(report.source_attributes)
    maintenance = "(8) Ongoing maintenance of intervention implementation and use"
    schedule = "(9) Update and continued validation or fairness assessment schedule"
    items = [
        _item("(2) Purpose of the intervention", "Intended use, patient population and users",
              report.model.intended_use or "Not declared in spec.intendedUse.",
              "ClinicalModel spec" if report.model.intended_use else "missing"),
        _owner_item("inputFeatures", provided),
        _owner_item("demographicRepresentativeness", provided),
        _owner_item("fairnessApproach", provided),
        _owner_item("biasManagement", provided),
        _owner_item("externalValidation", provided),
        _owner_item("developmentFairness", provided, _development_results(content)),
        _owner_item("externalFairness", provided),
        _item(maintenance,
              "Process and frequency by which fairness is monitored over time",
              _monitoring(report), "ClinicalModel spec"),
        _item(maintenance, "Fairness of the intervention in local data (last results)",
              _last_results(content), "measured"),
        _owner_item("updateProcess", provided),
        _item(schedule,
              "Frequency by which performance is corrected when fairness risks are identified",
              _corrections(report), "ClinicalModel spec"),
    ]
    return sorted(items, key=lambda item: CATEGORY_ORDER.index(item["category"]))
