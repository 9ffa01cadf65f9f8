"""The page's section on early warnings: what fires now, the precision of warnings, and
each warning's estimates beside the labelled outcome that decided them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from equiguard.report.markup import badge, figure, number, table, text, when

SECTION = ("early-warnings", "Early warnings")


def _borne_out(value: object) -> str:
    if value is None:
        return "not yet decided"
    return "borne out" if value else "not borne out"


def _realised(realised: Mapping[str, Any]) -> str:
    if not realised["decided"]:
        return f'<span class="hidden">{text(realised["note"])}</span>'
    verdict = badge(realised["verdict"])
    if realised.get("estimate") is None:
        return f'{verdict} <span class="hidden">{text(realised.get("note", ""))}</span>'
    shown = figure(realised["estimate"], realised.get("lower"), realised.get("upper"))
    return f"{verdict} {shown}"


def _estimate_rows(warning: Mapping[str, Any]) -> list[list[str]]:
    return [
        [
            when(warning["began"]),
            text(warning["revision"]),
            text(", ".join(warning["firing"])),
            f"{text(e['slo'])}: {text(e['metric'])} "
            + ("gap " if e["comparison"] == "maxGap" else "of ")
            + text(e["groups"])
            + (" (past its threshold)" if e["breached"] else ""),
            figure(e["estimate"], e["lower"], e["upper"]),
            _realised(e["realised"]),
            _borne_out(warning["borneOut"]),
        ]
        for e in warning["estimates"]
    ] or [
        [
            when(warning["began"]),
            text(warning["revision"]),
            text(", ".join(warning["firing"])),
            '<span class="hidden">no estimate judged</span>',
            "",
            "",
            _borne_out(warning["borneOut"]),
        ]
    ]


def early_warnings_section(content: Mapping[str, Any]) -> str:
    section = content.get("earlyWarnings")
    if not section:
        return ""
    out = [f'<h2 id="{SECTION[0]}">{SECTION[1]}</h2>']
    current = section["current"]
    if current:
        firing = ", ".join(current["firing"]) or "nothing"
        hold = " The warning holds the rollout." if current["holdingRollout"] else ""
        out.append(
            f"<p>State: <b>{text(current['state'])}</b> since {when(current['since'])} on "
            f"{text(current['revision'])} (action {text(section['action'])}). Watching "
            f"{text(', '.join(current['watching']))}; firing: {text(firing)}. "
            f"{text(current['message'])}{hold}</p>"
        )
    else:
        out.append('<p class="note">The early warning has not been assessed yet.</p>')
    tally = section["precision"]
    if tally:
        precision = tally["precision"]
        out.append(
            f"<p>Warnings raised: {text(tally['raised'])}; decided by labelled outcomes: "
            f"{text(tally['decided'])}; borne out: {text(tally['borneOut'])}; precision: "
            f"{number(precision) if precision is not None else 'none decided yet'}.</p>"
        )
    rows = [row for warning in section["warnings"] for row in _estimate_rows(warning)]
    if rows:
        out.append(
            table(
                [
                    "began",
                    "revision",
                    "what fired",
                    "watched estimate",
                    "estimated",
                    "realised on labels",
                    "outcome",
                ],
                rows,
            )
        )
    else:
        out.append('<p class="note">No early warning has been raised.</p>')
    out.append(
        '<p class="note">Estimates come from scores alone, before outcomes arrive; the '
        "realised value is the same pair's gap or group's rate in the labelled verdict that "
        "decided the SLO on the warned revision. Precision is the share of decided warnings "
        "that the labels bore out.</p>"
    )
    return "".join(out)
