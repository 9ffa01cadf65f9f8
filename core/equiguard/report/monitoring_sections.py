"""The page's sections on what the operator recorded: each SLO over time, and the
revisions, decisions and approvals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from equiguard.engine.verdict import Verdict
from equiguard.report.charts import group_chart, summary_chart
from equiguard.report.markup import badge, number, table, text, when


def _groups_table(groups: Sequence[Mapping[str, Any]], minimum: int) -> str:
    rows = []
    for g in groups:
        if g["hidden"]:
            rows.append(
                [text(g["group"]), '<span class="hidden">hidden (small cell)</span>', "", ""]
            )
            continue
        n = g["n"]
        enough = " (below minimum)" if isinstance(n, int) and 0 < n < minimum else ""
        rows.append(
            [
                text(g["group"]),
                number(g["estimate"])
                if g["estimate"] is not None
                else '<span class="hidden">no data</span>',
                f"{number(g['lower'])} to {number(g['upper'])}" if g["lower"] is not None else "",
                text(n) + enough,
            ]
        )
    return table(["group", "estimate", "interval", "n"], rows, numeric=(1, 2, 3))


def slo_section(slo: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    current = slo["current"] or {}
    out = [
        f'<section class="slo" id="slo-{text(slo["name"])}">',
        f"<h3>{text(slo['name'])} {badge(current.get('verdict'))}</h3>",
        f"<p>{text(slo['statement'])}</p>",
    ]
    if current:
        held = (
            f" The action is held back: {text(current['heldBack'])}."
            if current.get("heldBack")
            else ""
        )
        needed = current.get("outcomesNeeded")
        more = (
            f" Outcomes still needed: about {text(needed)} more {text(slo['minSamplesOf'])} "
            "per group."
            if current.get("verdict") == Verdict.INCONCLUSIVE and needed
            else ""
        )
        out.append(
            f'<p class="note">Current verdict since {when(current["since"])} on '
            f"{text(current['revision'])}: {text(current['message'])}{held}{more}</p>"
        )
    out.append(
        f"<h4>{text(slo['comparedQuantity'])}, with its {text(slo['confidence'])} interval</h4>"
    )
    out.append(summary_chart(slo, content))
    out.append(f"<h4>{text(slo['metricName'])} by {text(slo['attribute'])} group</h4>")
    out.append(group_chart(slo, content))
    latest = next((e for e in reversed(slo["evaluations"]) if e["groups"]), None)
    if latest is not None:
        out.append(
            f'<p class="note">Groups at {when(latest["time"])} ({text(latest["window"])} '
            f"window, revision {text(latest['revision'])}); n counts "
            f"{text(slo['minSamplesOf'])}, minimum {text(slo['minSamples'])}.</p>"
        )
        out.append(_groups_table(latest["groups"], int(slo["minSamples"])))
    out.append("<h4>Verdict history</h4>")
    if slo["history"]:
        out.append(
            table(
                ["time", "decision", "verdict", "revision", "message"],
                (
                    [
                        when(d["time"]),
                        text(d["decision"]),
                        badge(d["verdict"])
                        + (
                            f" <span class='note'>was {text(d['previousVerdict'])}</span>"
                            if d["previousVerdict"]
                            else ""
                        ),
                        text(d["revision"]),
                        text(d["message"]),
                    ]
                    for d in slo["history"]
                ),
            )
        )
    else:
        out.append('<p class="note">No decision recorded for this SLO yet.</p>')
    out.append("</section>")
    return "".join(out)


def revisions_section(content: Mapping[str, Any]) -> str:
    out = ['<h2 id="revisions">Revision history, decisions and approvals</h2>']
    if content["revisions"]:
        out.append(
            table(
                ["revision", "served", "evaluations", "with a violation", "outcome", "decisions"],
                [_revision_row(r) for r in content["revisions"]],
                numeric=(2, 3, 5),
            )
        )
    else:
        out.append('<p class="note">No revision has served yet.</p>')
    latest = content["model"]["latestApproval"]
    if latest:
        out.append(
            f"<p>Latest approval recorded on the model: <b>{text(latest['revision'])}</b> "
            f"approved by <b>{text(latest['by'])}</b> at {when(latest['time'])}: "
            f"{text(latest['reason'])}</p>"
        )
    decisions = content["decisions"]
    approvals = sum(1 for d in decisions if d["approval"])
    out.append(f"<h3>Decision log ({len(decisions)} decisions, {approvals} approvals)</h3>")
    if decisions:
        out.append(
            table(
                ["time", "decision", "SLO", "revision", "message and record"],
                [_decision_row(d) for d in decisions],
                row_class=["approval" if d["approval"] else "" for d in decisions],
            )
        )
    else:
        out.append('<p class="note">No decision has been recorded for this model.</p>')
    return "".join(out)


def _revision_row(r: Mapping[str, Any]) -> list[str]:
    outcome = []
    if r["qualifiedAt"]:
        outcome.append(f"qualified {when(r['qualifiedAt'])}")
    if r["quarantinedAt"]:
        outcome.append(f"quarantined {when(r['quarantinedAt'])}: {text(r['quarantineReason'])}")
    roles = text(", ".join(r["roles"]))
    return [
        f"<b>{text(r['revision'])}</b><br><span class='note'>{roles}</span>",
        f"{when(r['firstServed'])}<br>to {when(r['lastServed'])}",
        text(r["evaluations"]),
        text(r["evaluationsWithViolation"]),
        "<br>".join(outcome) or '<span class="note">—</span>',
        text(len(r["decisions"])),
    ]


def _decision_row(d: Mapping[str, Any]) -> list[str]:
    decision = text(d["decision"])
    if d["dryRun"]:
        decision += " <span class='note'>(dry run)</span>"
    revision = text(d["revision"])
    if d["targetRevision"]:
        revision += f" → {text(d['targetRevision'])}"
    message = text(d["message"])
    if d["approvedBy"]:
        message += (
            f"<br><b>Approved by {text(d['approvedBy'])}</b> at {when(d['approvedAt'])}: "
            f"{text(d['approvalReason'])}"
        )
    message += f"<br><span class='note'>record <code>{text(d['record'])}</code>"
    if d["job"]:
        message += f", Job <code>{text(d['job'])}</code>"
    if d["changeRecord"]:
        change = text(d["changeRecord"])
        message += f", change record <a class='change-record' href='{change}.md'>{change}.md</a>"
    message += "</span>"
    return [when(d["time"]), decision, text(d["slo"]), revision, message]
