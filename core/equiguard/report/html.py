"""The report as one self-contained HTML page, rendered from the report's content.

Only the content mapping is read, so the page says what the JSON says. No
script, no external stylesheet, font or image: charts are inline SVG and the
page opens offline, prints, and can be archived as one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from equiguard.report.documentation_sections import (
    attributes_section,
    checklists_section,
    development_section,
    utility_section,
)
from equiguard.report.early_warning_sections import SECTION, early_warnings_section
from equiguard.report.markup import badge, figure, table, text, when
from equiguard.report.monitoring_sections import revisions_section, slo_section

_CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#24292f;
 margin:0;background:#f6f8fa;line-height:1.45;font-size:15px}
main{max-width:1000px;margin:0 auto;padding:24px 32px 48px;background:#fff}
header{border-bottom:3px solid #0072B2;padding-bottom:12px;margin-bottom:8px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:16px;margin:24px 0 6px}
.sub{color:#57606a;margin:0}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}.card span{color:#57606a;font-size:12px}
table{border-collapse:collapse;width:100%;margin:8px 0 12px;font-size:13.5px}
th,td{border-bottom:1px solid #eaeef2;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
 font-weight:600}
.hidden{color:#6e7781;font-style:italic}.when{white-space:nowrap}.note{color:#57606a;font-size:13px}
.slo{border:1px solid #d0d7de;border-radius:6px;padding:4px 16px 12px;margin:16px 0}
blockquote{margin:8px 0;padding:8px 12px;background:#f6f8fa;border-left:4px solid #0072B2}
.attr td:first-child{width:34%}.missing{color:#9a6700}
.approval td{background:#fff8c5}
svg.chart{max-width:100%;height:auto;display:block;margin:6px 0}
nav ol{columns:2;margin:8px 0 0}
code{font-size:12.5px;background:#f6f8fa;padding:0 3px;border-radius:3px}
@media print{body{background:#fff}main{padding:0}.slo{break-inside:avoid}}
"""


def _model_section(content: Mapping[str, Any]) -> str:
    model = content["model"]
    owners = ", ".join(
        text(o["name"])
        + (f" (<a href='mailto:{text(o['email'])}'>{text(o['email'])}</a>)" if o["email"] else "")
        for o in model["owners"]
    )
    monitoring = model["monitoring"]
    rows = [
        ["Owners", owners],
        [
            "Model (bento)",
            f"<code>{text(model['bento'])}</code> in "
            + (
                f"<code>{text(model['image'])}</code>"
                if model["image"]
                else "the operator's default model runtime image"
            ),
        ],
        [
            "Decision",
            f"flagged when the score at <code>{text(model['scorePath'])}</code> is at least "
            f"{text(model['threshold'])}",
        ],
        ["Enforcement", text(model["enforcement"])],
        [
            "Evaluation",
            f"every {text(monitoring['interval'])}; a revision is good after meeting "
            f"every SLO for {text(monitoring['qualificationPeriod'])}; actions at least "
            f"{text(monitoring['cooldown'])} apart, at most "
            f"{text(monitoring['maxActionsPerDay'])} a day",
        ],
    ]
    control = model["changeControl"]
    if control:
        criteria = ", ".join(f"{text(k)} {text(v)}" for k, v in control["acceptance"].items())
        rows.append(
            [
                "Change control",
                f"methods {text(', '.join(control['methods']))}; "
                f"approval {'required' if control['approvalRequired'] else 'not required'}"
                + (f"; acceptance: {criteria}" if criteria else ""),
            ]
        )
    subgroups = content["subgroups"]
    groups = table(
        ["attribute", "read from", "groups"],
        [
            [text(a["name"]), text(a["source"]), text(", ".join(a["groups"]))]
            for a in subgroups["attributes"]
        ]
        + [
            [
                text(i["name"]),
                f"intersection of {text(' and '.join(i['of']))}",
                text(f"{len(i['groups'])} groups"),
            ]
            for i in subgroups["intersections"]
        ],
    )
    return (
        '<h2 id="model">Model, intended use and owners</h2>'
        f"<blockquote>{text(model['intendedUse'])}</blockquote>"
        + table(["", ""], rows)
        + '<h3 id="subgroups">Subgroups</h3>'
        + '<p class="note">Values that are missing or not declared fall in the group '
        "<i>unknown</i>, which is reported but never compared.</p>" + groups
    )


def _summary_section(content: Mapping[str, Any]) -> str:
    rows = []
    for slo in content["slos"]:
        current = slo["current"] or {}
        rows.append(
            [
                f"<a href='#slo-{text(slo['name'])}'>{text(slo['name'])}</a>",
                f"{text(slo['metricName'])} by {text(slo['attribute'])}",
                badge(current.get("verdict")),
                figure(current.get("estimate"), current.get("lower"), current.get("upper")),
                text(current.get("worstGroup")),
                when(current.get("since")),
            ]
        )
    return '<h2 id="summary">Equity SLOs at a glance</h2>' + table(
        ["SLO", "measures", "verdict", "estimate (interval)", "worst group", "since"], rows
    )


def _header(content: Mapping[str, Any]) -> str:
    model, state = content["model"], content["state"]
    cards = [
        ("SLOs met", state["sloSummary"] or "—"),
        ("serving revision", state["servingRevision"] or "—"),
        ("last good revision", state["lastGoodRevision"] or "—"),
        ("last action", state["lastAction"] or "none"),
    ]
    return (
        f"<header><h1>Equity report: {text(model['name'])}</h1>"
        f'<p class="sub">namespace {text(model["namespace"])} · generated '
        f"{when(content['generatedAt'])} · last evaluation "
        f"{when(state['lastEvaluationTime']) or 'none yet'}</p></header>"
        '<div class="cards">'
        + "".join(
            f"<div class='card'><span>{escape(k)}</span><b>{text(v)}</b></div>" for k, v in cards
        )
        + "</div>"
    )


def _about_section(content: Mapping[str, Any]) -> str:
    suppression = content["suppression"]
    return (
        '<h2 id="about">About this report</h2>'
        f"<p>{text(suppression['rule'])} In this report, {text(suppression['hiddenGroupValues'])} "
        "group values are withheld. It holds no patient identifier and no prediction payload: "
        "only subgroup statistics, verdicts and decisions.</p>"
        "<p>Sources: the ClinicalModel's spec and status (revision history, latest verdicts) "
        "and its EquityDecision records, the immutable audit trail whose evidence gives each "
        "point on the charts; the last point of each SLO is the latest evaluation in status. "
        f"The same content is in the JSON file beside this page (format "
        f"<code>{text(content['format'])}</code>).</p>"
    )


def render_html(content: Mapping[str, Any]) -> str:
    """The whole page."""
    toc = [
        ("summary", "Equity SLOs at a glance"),
        ("model", "Model, intended use and owners"),
        ("slos", "Equity SLOs over time"),
        ("revisions", "Revisions, decisions, approvals"),
        *([SECTION] if content.get("earlyWarnings") else []),
        ("development", "Fairness assessed in development"),
        ("utility", "Clinical utility and calibration by group"),
        ("attributes", content["attributeSet"]["title"]),
        ("checklists", "Reporting checklists"),
        ("about", "About this report"),
    ]
    body = [
        _header(content),
        "<nav><b>Contents</b><ol>"
        + "".join(f"<li><a href='#{key}'>{escape(title)}</a></li>" for key, title in toc)
        + "</ol></nav>",
        _summary_section(content),
        _model_section(content),
        '<h2 id="slos">Equity SLOs over time</h2>'
        '<p class="note">Each point is an evaluation: those at which the operator recorded a '
        "decision (with its evidence), and the latest one. Whiskers are confidence intervals; "
        "dotted lines mark when a revision started serving; the dashed red line is the "
        "threshold. Hidden groups are left out of the charts.</p>",
        *(slo_section(slo, content) for slo in content["slos"]),
        revisions_section(content),
        early_warnings_section(content),
        development_section(content),
        utility_section(content),
        attributes_section(content),
        checklists_section(content),
        _about_section(content),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: the page is whole by itself.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Equity report: {text(content['model']['name'])}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )
