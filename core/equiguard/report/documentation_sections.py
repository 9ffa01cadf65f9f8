"""The page's sections that document the model beyond monitoring: fairness assessed in
development, clinical utility and calibration by group, the ONC HTI-1 source attributes
and the reporting checklists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from equiguard.report import svg
from equiguard.report.charts import threshold_rules
from equiguard.report.markup import badge, figure, table, text, when


def development_section(content: Mapping[str, Any]) -> str:
    development = content["development"]
    out = ['<h2 id="development">Fairness assessed in development</h2>']
    if development is None:
        out.append(
            '<p class="note">No development assessment was given to this report (run it '
            "with <code>--development-records</code> and the held-out scored records "
            "of the model's development).</p>"
        )
        return "".join(out)
    rows = development["rows"]
    out.append(
        f"<p>The same SLOs, judged once by the engine on "
        f"{text(rows) + ' ' if rows is not None else ''}held-out scored records"
        + (
            f" from {when(development['from'])} to {when(development['to'])}"
            if development["from"]
            else ""
        )
        + f" (<code>{text(development['source'])}</code>).</p>"
    )
    by_name = {s["name"]: s for s in content["slos"]}
    for item in development["slos"]:
        slo = by_name.get(item["name"], {})
        out.append(f"<h3>{text(item['name'])} {badge(item['verdict'])}</h3>")
        out.append(f'<p class="note">{text(item["message"])}</p>')
        chart_rows = [
            svg.Row(
                g["group"],
                g["estimate"],
                g["lower"],
                g["upper"],
                "hidden (small cell)"
                if g["hidden"]
                else "no data"
                if g["estimate"] is None
                else f"{g['group']}: {figure(g['estimate'], g['lower'], g['upper'])}, n {g['n']}",
            )
            for g in item["groups"]
        ]
        if chart_rows and slo:
            rules = threshold_rules(slo) if slo["comparison"] == "floor" else []
            out.append(
                svg.forest_chart(
                    f"{item['name']}: {slo['metricName']} by group",
                    chart_rows,
                    slo["metricName"],
                    rules,
                )
            )
    return "".join(out)


def utility_section(content: Mapping[str, Any]) -> str:
    development = content["development"]
    out = ['<h2 id="utility">Clinical utility and calibration by group</h2>']
    utility = (development or {}).get("utility") or {}
    if not utility.get("groups"):
        out.append(
            '<p class="note">Given with the development assessment '
            "(<code>--development-records</code>).</p>"
        )
        return "".join(out)
    out.append(
        '<p class="note">On the development records: net benefit at the decision '
        "threshold (Vickers &amp; Elkin 2006), calibration slope and intercept of the "
        "logistic recalibration on logit(score) (ideal 1 and 0), and observed/expected "
        "ratio, each with its interval; withheld values belong to small groups.</p>"
    )
    metrics = ("netBenefit", "calibrationSlope", "calibrationIntercept", "observedExpectedRatio")
    for dimension, groups in utility["groups"].items():
        if dimension == "overall":
            continue
        out.append(f"<h3>{text(dimension)}</h3>")
        out.append(
            table(
                ["group", "net benefit", "calibration slope", "calibration intercept", "O/E"],
                (
                    [text(group)]
                    + [figure(block[m]["value"], *block[m]["interval"]) for m in metrics]
                    for group, block in groups.items()
                ),
                numeric=(1, 2, 3, 4),
            )
        )
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
            lines += [
                (f"{first} {g}", colours.get(g, svg.UNKNOWN_COLOUR), c["netBenefit"], False)
                for g, c in curve["groups"][first].items()
                if g != "unknown"
            ]
        out.append(
            f'<h3 id="decision-curve">Decision curve{f" by {text(first)}" if first else ""}</h3>'
        )
        out.append(
            svg.line_chart(
                "Decision curve: net benefit by threshold probability",
                curve["thresholds"],
                lines,
                "threshold probability",
                "net benefit",
            )
        )
    return "".join(out)


def checklists_section(content: Mapping[str, Any]) -> str:
    out = [
        '<h2 id="checklists">Reporting checklists</h2>',
        '<p class="note">What this report fills of each framework\'s items: '
        "<i>filled</i>, <i>partly</i> (with what the owner must add) or <i>n.a.</i></p>",
    ]
    for checklist in content["checklists"]:
        out.append(f"<h3>{text(checklist['framework'])}</h3>")
        out.append(
            table(
                ["item", "status", "evidence", "the owner must add"],
                (
                    [
                        text(i["item"]),
                        f"<b class='status-{text(i['status']).replace('.', '')}'>"
                        f"{text(i['status'])}</b>",
                        text(i["evidence"]),
                        text(i["ownerMustAdd"]) or "—",
                    ]
                    for i in checklist["items"]
                ),
            )
        )
    return "".join(out)


def attributes_section(content: Mapping[str, Any]) -> str:
    chosen = content["attributeSet"]
    out = [
        f'<h2 id="attributes">{text(chosen["title"])}</h2>',
        f'<p class="note">{text(chosen["basis"])} '
        "<i>Measured</i> and <i>ClinicalModel spec</i> values come from the cluster, and "
        "each names the evidence it was read from; the others come from the model owner's "
        f"source-attributes file. Attribute set <code>{text(chosen['name'])}</code>, chosen "
        "with <code>equiguard report --attributes</code>.</p>",
    ]
    category = ""
    rows: list[list[str]] = []
    classes: list[str] = []
    for item in content["sourceAttributes"]:
        if item["category"] != category:
            category = item["category"]
            rows.append([f"<b>{text(category)}</b>", ""])
            classes.append("")
        value = text(item["value"]).replace("\n", "<br>")
        css = "missing" if item["origin"] == "missing" else ""
        rows.append(
            [
                text(item["attribute"]),
                f'<span class="{css}">{value}</span><br>'
                f'<span class="note">source: {text(item["origin"])}; evidence: '
                f"{text(item['evidence'])}</span>",
            ]
        )
        classes.append("attr")
    out.append(table(["attribute", "value"], rows, row_class=classes))
    return "".join(out)
