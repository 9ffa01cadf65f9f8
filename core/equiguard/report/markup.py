"""The HTML fragments every section of the report's page is made of.

Text is escaped on its way in; times read as people read them; estimates
have three decimals, as the engine's messages write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from equiguard.report.charts import VERDICT_COLOURS, moment


def text(value: object) -> str:
    """Text for HTML: escaped, empty for missing values."""
    return "" if value is None else escape(str(value))


def when(stamp: object) -> str:
    """A status time (RFC 3339, UTC) as people read it, to the minute."""
    if not isinstance(stamp, str) or not stamp:
        return ""
    return f'<span class="when">{escape(moment(stamp).strftime("%Y-%m-%d %H:%M"))} UTC</span>'


def badge(verdict: object) -> str:
    """A verdict in its colour; grey when there is none yet."""
    if not verdict:
        return '<span class="badge" style="background:#8c959f">not evaluated</span>'
    colour = VERDICT_COLOURS.get(str(verdict), "#8c959f")
    return f'<span class="badge" style="background:{colour}">{text(verdict)}</span>'


def number(value: object) -> str:
    """Estimates to three decimals, as the engine's messages write them."""
    if isinstance(value, float):
        return f"{value:.3f}"
    return text(value)


def figure(estimate: object, lower: object, upper: object) -> str:
    """An estimate with its interval when it has one: "0.412 (0.380 to 0.444)"."""
    if estimate is None:
        return ""
    shown = number(estimate)
    if lower is not None and upper is not None:
        shown += f" ({number(lower)} to {number(upper)})"
    return shown


def table(
    headings: Sequence[str],
    rows: Iterable[Sequence[str]],
    row_class: Sequence[str] = (),
    numeric: Sequence[int] = (),
) -> str:
    """A table of cells already in HTML; `numeric` columns align right."""
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headings)
    )
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_class[index]}"' if index < len(row_class) and row_class[index] else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
