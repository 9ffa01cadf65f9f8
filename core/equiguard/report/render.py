"""The two renderings of a report, from its input alone."""

from __future__ import annotations

import json
from dataclasses import dataclass

from equiguard.report.content import build_content
from equiguard.report.html import render_html
from equiguard.report.material import ReportInput


@dataclass(frozen=True)
class Rendered:
    html: str
    json: str


def render_report(report: ReportInput) -> Rendered:
    """The HTML page and the JSON document, made from the same content."""
    content = build_content(report)
    return Rendered(
        html=render_html(content),
        json=json.dumps(content, indent=2, ensure_ascii=False) + "\n",
    )
