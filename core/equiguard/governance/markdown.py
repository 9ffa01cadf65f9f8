"""The change record for people: Markdown with the guidance's sections, in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def render_change_record(record: Mapping[str, Any]) -> str:
    model, change = record["model"], record["change"]
    description = record["descriptionOfModifications"]
    protocol = record["modificationProtocol"]
    lines = [
        f"# Change record {change['name']}: {model['name']}",
        "",
        f"Structured as a predetermined change control plan ({record['structure']}). "
        "Every figure was recorded by equiguard's operator and recalibration Job; counts "
        "from 1 to 10 are withheld.",
        "",
        f"**{change['outcome']}** ({change['reason']}) at {change['time']}: {change['message']}",
        "",
        "## 1. Description of modifications",
        "",
        f"- Kind: {description['kind']}, method **{description['method']}** on "
        f"`{description['dimension']}`",
        f"- Triggered by SLO `{description['trigger']['slo']}`"
        + (
            f" ({description['trigger']['reason']}: {description['trigger']['message']})"
            if description["trigger"]["record"]
            else ""
        ),
        f"- Revision before: `{description['revisionBefore']}`; after: "
        f"`{description['revisionAfter'] or 'none published'}`",
        "",
        "| group | changed | detail |",
        "|---|---|---|",
        *(
            f"| {g['group']} | {'yes' if g['changed'] else 'no'} | {g['detail'] or ''} |"
            for g in description["groups"]
        ),
        "",
        "## 2. Modification protocol",
        "",
        *_data_management(protocol["dataManagement"]),
        *_retraining(protocol["retraining"]),
        *_performance(protocol["performanceEvaluation"]),
        *_update(protocol["updateProcedures"]),
        *_impact(record["impactAssessment"]),
        *_versions(record["versionControlAndLabelling"]),
    ]
    return "\n".join(lines) + "\n"


def _shown(value: object) -> str:
    if value is None:
        return "withheld"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _data_management(data: Mapping[str, Any]) -> list[str]:
    window, outcomes = data.get("window") or {}, data.get("outcomes") or {}
    return [
        "### 2.1 Data management",
        "",
        f"- Store: {data['store']}; window {window.get('start')} to {window.get('end')}, "
        f"held out from {window.get('holdoutStart')}",
        f"- Outcomes: {_shown(outcomes.get('fit'))} to fit, "
        f"{_shown(outcomes.get('holdout'))} held out to judge",
        "",
        "| group | labelled | with outcome | without |",
        "|---|---|---|---|",
        *(
            f"| {c['group']} | {_shown(c['n'])} | {_shown(c['positives'])} | "
            f"{_shown(c['negatives'])} |"
            for c in data["countsPerGroup"]
        ),
        "",
    ]


def _retraining(data: Mapping[str, Any]) -> list[str]:
    tried = ", ".join(
        f"{m['method']} ({'held' if m['held'] else m['reason'] or 'did not hold'})"
        for m in data["methodsTried"]
    )
    return [
        "### 2.2 Re-training",
        "",
        f"- Methods the envelope allows: {', '.join(data['methodsAllowed'])}",
        f"- Tried, in order: {tried}",
        "",
    ]


def _performance(data: Mapping[str, Any]) -> list[str]:
    lines = [
        "### 2.3 Performance evaluation and acceptance criteria",
        "",
        f"Judged on {data['population']} (held out from {data['heldOutFrom']}).",
        "",
        "| criterion | limit | held | group | before | after | interval |",
        "|---|---|---|---|---|---|---|",
    ]
    for criterion in data["acceptanceCriteria"]:
        checks = criterion["checks"] or [{}]
        for check in checks:
            interval = check.get("interval")
            lines.append(
                f"| {criterion['name']} | {_shown(criterion['limit'])} | "
                f"{'yes' if criterion['held'] else 'NO'} | "
                f"{check.get('dimension', '')}/{check.get('group', '')} | "
                f"{_shown(check.get('before'))} | {_shown(check.get('after'))} | "
                + ("" if not interval else f"{_shown(interval[0])} to {_shown(interval[1])}")
                + " |"
            )
    lines.append("")
    return lines


def _update(data: Mapping[str, Any]) -> list[str]:
    approval = data.get("approval")
    return [
        "### 2.4 Update procedures",
        "",
        f"- {data['procedure'][0].upper()}{data['procedure'][1:]}.",
        f"- Approval required: {'yes' if data['approvalRequired'] else 'no'}; "
        + (
            f"approved by {approval['by']} at {approval['time']} ({approval['reason']})"
            if approval
            else "no approval recorded"
        ),
        f"- Promoted: {data['promoted'] or 'not promoted'}",
        "",
        "| record | decision | reason | time |",
        "|---|---|---|---|",
        *(
            f"| {r['name']} | {r['decision']} | {r['reason']} | {r['time']} |"
            for r in data["records"]
        ),
        "",
    ]


def _impact(data: Mapping[str, Any]) -> list[str]:
    lines = ["## 3. Impact assessment", "", f"Per group of `{data['dimension']}`:", ""]
    metrics = list(data["groups"][0]["metrics"]) if data["groups"] else []
    lines += ["| group | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for group in data["groups"]:
        cells = [f"{_shown(v['before'])} → {_shown(v['after'])}" for v in group["metrics"].values()]
        lines.append(f"| {group['group']} | " + " | ".join(cells) + " |")
    lines += ["", "| SLO | before | after |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['before']} | {s['after']} |" for s in data["slos"]]
    return [*lines, ""]


def _versions(data: Mapping[str, Any]) -> list[str]:
    labelling = data["labelling"]
    limitations = labelling["knownLimitations"] or ["none recorded by the live evidence"]
    return [
        "## 4. Version control and labelling",
        "",
        f"- Before: `{data['revisionBefore']}`; after: `{data['revisionAfter']}`; "
        f"serving: `{data['serving']}`",
        f"- Decision records: {', '.join(data['recordNames'])}",
        f"- Intended use: {labelling['intendedUse']}",
        "- Known limitations:",
        *(f"  - {item}" for item in limitations),
        f"- Change shown to users: {labelling['userFacingChange']}",
        "",
    ]
