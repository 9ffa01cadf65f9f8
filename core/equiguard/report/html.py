"""The report as one self-contained HTML page, rendered from the report's content.

Only the content mapping is read, so the page says what the JSON says. No
script, no external stylesheet, font or image: charts are inline SVG and the
page opens offline, prints, and can be archived as one file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from equiguard.engine.verdict import Verdict
from equiguard.report import svg
from equiguard.report.charts import (
    VERDICT_COLOURS,
    group_chart,
    moment,
    summary_chart,
    threshold_rules,
)

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


def _t(value: object) -> str:
    """Text for HTML: escaped, empty for missing values."""
    return "" if value is None else escape(str(value))


def _when(text: object) -> str:
    """A status time (RFC 3339, UTC) as people read it, to the minute."""
    if not isinstance(text, str) or not text:
        return ""
    return f'<span class="when">{escape(moment(text).strftime("%Y-%m-%d %H:%M"))} UTC</span>'


def _badge(verdict: object) -> str:
    if not verdict:
        return '<span class="badge" style="background:#8c959f">not evaluated</span>'
    colour = VERDICT_COLOURS.get(str(verdict), "#8c959f")
    return f'<span class="badge" style="background:{colour}">{_t(verdict)}</span>'


def _num(value: object) -> str:
    """Estimates to three decimals, as the engine's messages write them."""
    if isinstance(value, float):
        return f"{value:.3f}"
    return _t(value)


def _figure(estimate: object, lower: object, upper: object) -> str:
    if estimate is None:
        return ""
    text = _num(estimate)
    if lower is not None and upper is not None:
        text += f" ({_num(lower)} to {_num(upper)})"
    return text


def _table(headings: Sequence[str], rows: Iterable[Sequence[str]], row_class: Sequence[str] = (),
           numeric: Sequence[int] = ()) -> str:
    head = "".join(f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headings))
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_class[index]}"' if index < len(row_class) and row_class[index] else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _groups_table(groups: Sequence[Mapping[str, Any]], minimum: int) -> str:
    rows = []
    for g in groups:
        if g["hidden"]:
            rows.append([_t(g["group"]), '<span class="hidden">hidden (small cell)</span>', "", ""])
            continue
        n = g["n"]
        enough = " (below minimum)" if isinstance(n, int) and 0 < n < minimum else ""
        rows.append([
            _t(g["group"]),
            _num(g["estimate"]) if g["estimate"] is not None
            else '<span class="hidden">no data</span>',
            f"{_num(g['lower'])} to {_num(g['upper'])}" if g["lower"] is not None else "",
            _t(n) + enough,
        ])
    return _table(["group", "estimate", "interval", "n"], rows, numeric=(1, 2, 3))


def _slo_section(slo: Mapping[str, Any], content: Mapping[str, Any]) -> str:
    current = slo["current"] or {}
    out = [f'<section class="slo" id="slo-{_t(slo["name"])}">',
           f"<h3>{_t(slo['name'])} {_badge(current.get('verdict'))}</h3>",
           f"<p>{_t(slo['statement'])}</p>"]
    if current:
        held = (f" The action is held back: {_t(current['heldBack'])}."
                if current.get("heldBack") else "")
        needed = current.get("outcomesNeeded")
        more = (f" Outcomes still needed: about {_t(needed)} more {_t(slo['minSamplesOf'])} "
                "per group." if current.get("verdict") == Verdict.INCONCLUSIVE and needed else "")
        out.append(f'<p class="note">Current verdict since {_when(current["since"])} on '
                   f"{_t(current['revision'])}: {_t(current['message'])}{held}{more}</p>")
    out.append(f"<h4>{_t(slo['comparedQuantity'])}, with its {_t(slo['confidence'])} interval"
               "</h4>")
    out.append(summary_chart(slo, content))
    out.append(f"<h4>{_t(slo['metricName'])} by {_t(slo['attribute'])} group</h4>")
    out.append(group_chart(slo, content))
    latest = next((e for e in reversed(slo["evaluations"]) if e["groups"]), None)
    if latest is not None:
        out.append(f'<p class="note">Groups at {_when(latest["time"])} ({_t(latest["window"])} '
                   f"window, revision {_t(latest['revision'])}); n counts "
                   f"{_t(slo['minSamplesOf'])}, minimum {_t(slo['minSamples'])}.</p>")
        out.append(_groups_table(latest["groups"], int(slo["minSamples"])))
    out.append("<h4>Verdict history</h4>")
    if slo["history"]:
        out.append(_table(
            ["time", "decision", "verdict", "revision", "message"],
            ([_when(d["time"]), _t(d["decision"]),
              _badge(d["verdict"]) + (f" <span class='note'>was {_t(d['previousVerdict'])}</span>"
                                      if d["previousVerdict"] else ""),
              _t(d["revision"]), _t(d["message"])] for d in slo["history"]),
        ))
    else:
        out.append('<p class="note">No decision recorded for this SLO yet.</p>')
    out.append("</section>")
    return "".join(out)


def _revisions_section(content: Mapping[str, Any]) -> str:
    out = ['<h2 id="revisions">Revision history, decisions and approvals</h2>']
    if content["revisions"]:
        rows = []
        for r in content["revisions"]:
            outcome = []
            if r["qualifiedAt"]:
                outcome.append(f"qualified {_when(r['qualifiedAt'])}")
            if r["quarantinedAt"]:
                outcome.append(f"quarantined {_when(r['quarantinedAt'])}: "
                               f"{_t(r['quarantineReason'])}")
            rows.append([
                f"<b>{_t(r['revision'])}</b><br><span class='note'>{_t(', '.join(r['roles']))}"
                "</span>",
                f"{_when(r['firstServed'])}<br>to {_when(r['lastServed'])}",
                _t(r["evaluations"]), _t(r["evaluationsWithViolation"]),
                "<br>".join(outcome) or '<span class="note">—</span>',
                _t(len(r["decisions"])),
            ])
        out.append(_table(["revision", "served", "evaluations", "with a violation", "outcome",
                           "decisions"], rows, numeric=(2, 3, 5)))
    else:
        out.append('<p class="note">No revision has served yet.</p>')
    latest = content["model"]["latestApproval"]
    if latest:
        out.append(f"<p>Latest approval recorded on the model: <b>{_t(latest['revision'])}</b> "
                   f"approved by <b>{_t(latest['by'])}</b> at {_when(latest['time'])}: "
                   f"{_t(latest['reason'])}</p>")
    decisions = content["decisions"]
    approvals = sum(1 for d in decisions if d["approval"])
    out.append(f"<h3>Decision log ({len(decisions)} decisions, {approvals} approvals)</h3>")
    if decisions:
        out.append(_table(
            ["time", "decision", "SLO", "revision", "message and record"],
            ([_when(d["time"]),
              _t(d["decision"]) + (" <span class='note'>(dry run)</span>" if d["dryRun"] else ""),
              _t(d["slo"]),
              _t(d["revision"]) + (f" → {_t(d['targetRevision'])}" if d["targetRevision"] else ""),
              _t(d["message"])
              + (f"<br><b>Approved by {_t(d['approvedBy'])}</b> at {_when(d['approvedAt'])}: "
                 f"{_t(d['approvalReason'])}" if d["approvedBy"] else "")
              + f"<br><span class='note'>record <code>{_t(d['record'])}</code>"
              + (f", Job <code>{_t(d['job'])}</code>" if d["job"] else "")
              + (f", change record <a class='change-record' href='{_t(d['changeRecord'])}.md'>"
                 f"{_t(d['changeRecord'])}.md</a>" if d["changeRecord"] else "") + "</span>"]
             for d in decisions),
            row_class=["approval" if d["approval"] else "" for d in decisions],
        ))
    else:
        out.append('<p class="note">No decision has been recorded for this model.</p>')
    return "".join(out)


def _development_section(content: Mapping[str, Any]) -> str:
    development = content["development"]
    out = ['<h2 id="development">Fairness assessed in development</h2>']
    if development is None:
        out.append('<p class="note">No development assessment was given to this report (run it '
                   "with <code>--development-records</code> and the held-out scored records "
                   "of the model's development).</p>")
        return "".join(out)
    rows = development["rows"]
    out.append(f"<p>The same SLOs, judged once by the engine on "
               f"{_t(rows) + ' ' if rows is not None else ''}held-out scored records"
               + (f" from {_when(development['from'])} to {_when(development['to'])}"
                  if development["from"] else "")
               + f" (<code>{_t(development['source'])}</code>).</p>")
    by_name = {s["name"]: s for s in content["slos"]}
    for item in development["slos"]:
        slo = by_name.get(item["name"], {})
        out.append(f"<h3>{_t(item['name'])} {_badge(item['verdict'])}</h3>")
        out.append(f'<p class="note">{_t(item["message"])}</p>')
        chart_rows = [
            svg.Row(g["group"], g["estimate"], g["lower"], g["upper"],
                    "hidden (small cell)" if g["hidden"] else "no data" if g["estimate"] is None
                    else f"{g['group']}: {_figure(g['estimate'], g['lower'], g['upper'])}, "
                         f"n {g['n']}")
            for g in item["groups"]
        ]
        if chart_rows and slo:
            rules = threshold_rules(slo) if slo["comparison"] == "floor" else []
            out.append(svg.forest_chart(f"{item['name']}: {slo['metricName']} by group",
                                        chart_rows, slo["metricName"], rules))
    return "".join(out)


def _utility_section(content: Mapping[str, Any]) -> str:
    development = content["development"]
    out = ['<h2 id="utility">Clinical utility and calibration by group</h2>']
    utility = (development or {}).get("utility") or {}
    if not utility.get("groups"):
        out.append('<p class="note">Given with the development assessment '
                   "(<code>--development-records</code>).</p>")
        return "".join(out)
    out.append('<p class="note">On the development records: net benefit at the decision '
               "threshold (Vickers &amp; Elkin 2006), calibration slope and intercept of the "
               "logistic recalibration on logit(score) (ideal 1 and 0), and observed/expected "
               "ratio, each with its interval; withheld values belong to small groups.</p>")
    metrics = ("netBenefit", "calibrationSlope", "calibrationIntercept", "observedExpectedRatio")
    for dimension, groups in utility["groups"].items():
        if dimension == "overall":
            continue
        out.append(f"<h3>{_t(dimension)}</h3>")
        out.append(_table(
            ["group", "net benefit", "calibration slope", "calibration intercept", "O/E"],
            ([_t(group)] + [_figure(block[m]["value"], *block[m]["interval"]) for m in metrics]
             for group, block in groups.items()),
            numeric=(1, 2, 3, 4),
        ))
    curve = utility.get("decisionCurve") or {}
    if curve.get("thresholds"):
        first = next((d for d in curve["groups"] if d != "overall"), None)
        overall = curve["groups"]["overall"]["all"]
        lines: list[tuple[str, str, Sequence[float | None], bool]] = [
            ("treat all", "#6e7781", overall["treatAll"], True),
            ("treat none", "#afb8c1", [0.0] * len(curve["thresholds"]), True),
            ("model, overall", "#000000", overall["netBenefit"], False),
        ]
        if first is not None:
            colours = svg.group_colours(list(curve["groups"][first]))
            lines += [(f"{first} {g}", colours.get(g, svg.UNKNOWN_COLOUR), c["netBenefit"], False)
                      for g, c in curve["groups"][first].items() if g != "unknown"]
        out.append(f'<h3 id="decision-curve">Decision curve{f" by {_t(first)}" if first else ""}'
                   "</h3>")
        out.append(svg.line_chart("Decision curve: net benefit by threshold probability",
                                  curve["thresholds"], lines, "threshold probability",
                                  "net benefit"))
    return "".join(out)


def _checklists_section(content: Mapping[str, Any]) -> str:
    out = ['<h2 id="checklists">Reporting checklists</h2>',
           '<p class="note">What this report fills of each framework\'s items: '
           "<i>filled</i>, <i>partly</i> (with what the owner must add) or <i>n.a.</i></p>"]
    for checklist in content["checklists"]:
        out.append(f"<h3>{_t(checklist['framework'])}</h3>")
        out.append(_table(
            ["item", "status", "evidence", "the owner must add"],
            ([_t(i["item"]), f"<b class='status-{_t(i['status']).replace('.', '')}'>"
              f"{_t(i['status'])}</b>", _t(i["evidence"]), _t(i["ownerMustAdd"]) or "—"]
             for i in checklist["items"]),
        ))
    return "".join(out)


def _attributes_section(content: Mapping[str, Any]) -> str:
    chosen = content["attributeSet"]
    out = [f'<h2 id="attributes">{_t(chosen["title"])}</h2>',
           f'<p class="note">{_t(chosen["basis"])} '
           "<i>Measured</i> and <i>ClinicalModel spec</i> values come from the cluster, and "
           "each names the evidence it was read from; the others come from the model owner's "
           f"source-attributes file. Attribute set <code>{_t(chosen['name'])}</code>, chosen "
           "with <code>equiguard report --attributes</code>.</p>"]
    category = ""
    rows: list[list[str]] = []
    classes: list[str] = []
    for item in content["sourceAttributes"]:
        if item["category"] != category:
            category = item["category"]
            rows.append([f"<b>{_t(category)}</b>", ""])
            classes.append("")
        value = _t(item["value"]).replace("\n", "<br>")
        css = "missing" if item["origin"] == "missing" else ""
        rows.append([_t(item["attribute"]),
                     f'<span class="{css}">{value}</span><br>'
                     f'<span class="note">source: {_t(item["origin"])}; evidence: '
                     f'{_t(item["evidence"])}</span>'])
        classes.append("attr")
    out.append(_table(["attribute", "value"], rows, row_class=classes))
    return "".join(out)


def _model_section(content: Mapping[str, Any]) -> str:
    model = content["model"]
    owners = ", ".join(
        _t(o["name"]) + (f" (<a href='mailto:{_t(o['email'])}'>{_t(o['email'])}</a>)"
                         if o["email"] else "")
        for o in model["owners"]
    )
    monitoring = model["monitoring"]
    rows = [
        ["Owners", owners],
        ["Model (bento)",
         f"<code>{_t(model['bento'])}</code> in " + (
             f"<code>{_t(model['image'])}</code>" if model["image"]
             else "the operator's default model runtime image")],
        ["Decision", f"flagged when the score at <code>{_t(model['scorePath'])}</code> is at least "
                     f"{_t(model['threshold'])}"],
        ["Enforcement", _t(model["enforcement"])],
        ["Evaluation", f"every {_t(monitoring['interval'])}; a revision is good after meeting "
                       f"every SLO for {_t(monitoring['qualificationPeriod'])}; actions at least "
                       f"{_t(monitoring['cooldown'])} apart, at most "
                       f"{_t(monitoring['maxActionsPerDay'])} a day"],
    ]
    control = model["changeControl"]
    if control:
        criteria = ", ".join(f"{_t(k)} {_t(v)}" for k, v in control["acceptance"].items())
        rows.append(["Change control", f"methods {_t(', '.join(control['methods']))}; "
                     f"approval {'required' if control['approvalRequired'] else 'not required'}"
                     + (f"; acceptance: {criteria}" if criteria else "")])
    subgroups = content["subgroups"]
    groups = _table(
        ["attribute", "read from", "groups"],
        [[_t(a["name"]), _t(a["source"]), _t(", ".join(a["groups"]))]
         for a in subgroups["attributes"]]
        + [[_t(i["name"]), f"intersection of {_t(' and '.join(i['of']))}",
            _t(f"{len(i['groups'])} groups")] for i in subgroups["intersections"]],
    )
    return ('<h2 id="model">Model, intended use and owners</h2>'
            f"<blockquote>{_t(model['intendedUse'])}</blockquote>"
            + _table(["", ""], rows)
            + '<h3 id="subgroups">Subgroups</h3>'
            + '<p class="note">Values that are missing or not declared fall in the group '
              "<i>unknown</i>, which is reported but never compared.</p>" + groups)


def _summary_section(content: Mapping[str, Any]) -> str:
    rows = []
    for slo in content["slos"]:
        current = slo["current"] or {}
        rows.append([
            f"<a href='#slo-{_t(slo['name'])}'>{_t(slo['name'])}</a>",
            f"{_t(slo['metricName'])} by {_t(slo['attribute'])}",
            _badge(current.get("verdict")),
            _figure(current.get("estimate"), current.get("lower"), current.get("upper")),
            _t(current.get("worstGroup")),
            _when(current.get("since")),
        ])
    return ('<h2 id="summary">Equity SLOs at a glance</h2>'
            + _table(["SLO", "measures", "verdict", "estimate (interval)", "worst group", "since"],
                     rows))


def _header(content: Mapping[str, Any]) -> str:
    model, state = content["model"], content["state"]
    cards = [
        ("SLOs met", state["sloSummary"] or "—"),
        ("serving revision", state["servingRevision"] or "—"),
        ("last good revision", state["lastGoodRevision"] or "—"),
        ("last action", state["lastAction"] or "none"),
    ]
    return (
        f"<header><h1>Equity report: {_t(model['name'])}</h1>"
        f'<p class="sub">namespace {_t(model["namespace"])} · generated '
        f"{_when(content['generatedAt'])} · last evaluation "
        f"{_when(state['lastEvaluationTime']) or 'none yet'}</p></header>"
        '<div class="cards">'
        + "".join(f"<div class='card'><span>{escape(k)}</span><b>{_t(v)}</b></div>"
                  for k, v in cards)
        + "</div>"
    )


def _about_section(content: Mapping[str, Any]) -> str:
    suppression = content["suppression"]
    return (
        '<h2 id="about">About this report</h2>'
        f"<p>{_t(suppression['rule'])} In this report, {_t(suppression['hiddenGroupValues'])} "
        "group values are withheld. It holds no patient identifier and no prediction payload: "
        "only subgroup statistics, verdicts and decisions.</p>"
        "<p>Sources: the ClinicalModel's spec and status (revision history, latest verdicts) "
        "and its EquityDecision records, the immutable audit trail whose evidence gives each "
        "point on the charts; the last point of each SLO is the latest evaluation in status. "
        f"The same content is in the JSON file beside this page (format "
        f"<code>{_t(content['format'])}</code>).</p>"
    )


def render_html(content: Mapping[str, Any]) -> str:
    """The whole page."""
    toc = [("summary", "Equity SLOs at a glance"), ("model", "Model, intended use and owners"),
           ("slos", "Equity SLOs over time"), ("revisions", "Revisions, decisions, approvals"),
           ("development", "Fairness assessed in development"),
           ("utility", "Clinical utility and calibration by group"),
           ("attributes", content["attributeSet"]["title"]),
           ("checklists", "Reporting checklists"), ("about", "About this report")]
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
        *(_slo_section(slo, content) for slo in content["slos"]),
        _revisions_section(content),
        _development_section(content),
        _utility_section(content),
        _attributes_section(content),
        _checklists_section(content),
        _about_section(content),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: the page is whole by itself.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>Equity report: {_t(content['model']['name'])}</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>\n"
    )
