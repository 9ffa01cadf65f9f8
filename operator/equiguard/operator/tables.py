"""Plain-text tables and ages for the people-facing commands, in kubectl's style."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def format_table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces; the last column is not padded."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headings)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return "   ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([line(headings), *(line(row) for row in rows)])


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago, as kubectl writes it: 45s, 12m, 5h, 3d."""
    if moment is None:
        return "-"
    seconds = max(int((now - moment).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
