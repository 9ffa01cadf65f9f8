"""Inline SVG charts for the report: estimates with intervals over time, and forest plots.

Plain strings, no scripts and nothing fetched: the report must open offline.
Each point carries a <title>, which browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

# Okabe-Ito: told apart by readers with colour-vision deficiencies; grey is `unknown`.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
UNKNOWN_COLOUR = "#999999"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif"


@dataclass(frozen=True)
class Point:
    time: datetime
    estimate: float
    lower: float | None
    upper: float | None
    title: str
    colour: str = ""  # overrides the series colour (a verdict's colour)


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Rule:
    """A horizontal reference line (a threshold)."""

    value: float
    label: str


@dataclass(frozen=True)
class Marker:
    """A vertical line at a moment (a revision starting to serve)."""

    time: datetime
    label: str


@dataclass(frozen=True)
class Row:
    """One line of a forest plot."""

    label: str
    estimate: float | None
    lower: float | None
    upper: float | None
    title: str


def group_colours(groups: Sequence[str]) -> dict[str, str]:
    colours: dict[str, str] = {}
    declared = [g for g in groups if g != "unknown"]
    for index, group in enumerate(declared):
        colours[group] = PALETTE[index % len(PALETTE)]
    if "unknown" in groups:
        colours["unknown"] = UNKNOWN_COLOUR
    return colours


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


_TIME_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
               7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400)


def time_ticks(start: float, end: float, count: int = 6) -> tuple[list[float], int]:
    """Tick times (epoch seconds) on round minutes, hours or days, and the step."""
    span = max(end - start, 60.0)
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks = []
    value = float(first)
    while value <= end:
        ticks.append(value)
        value += step
    return ticks, step


def time_label(moment: float, step: int, first: bool) -> str:
    """The first tick and each midnight name the day; other ticks the hour."""
    when = datetime.fromtimestamp(moment, UTC)
    if step >= 86400:
        return when.strftime("%d %b %Y" if first else "%d %b")
    if first:
        return when.strftime("%d %b %H:%M")
    return when.strftime("%d %b" if when.hour == 0 and when.minute == 0 else "%H:%M")


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class _Frame:
    """A chart's frame: the scales from data to pixels inside the plot area, and what
    every chart draws around that area (background, grid, axis titles, legend)."""

    def __init__(self, width: int, height: int, left: int, right: int, top: int, bottom: int,
                 x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top
        self.x_min, self.x_max = x_range
        self.y_min, self.y_max = y_range

    def x(self, value: float) -> float:
        share = (value - self.x_min) / ((self.x_max - self.x_min) or 1.0)
        return round(self.x0 + share * (self.x1 - self.x0), 1)

    def y(self, value: float) -> float:
        share = (value - self.y_min) / ((self.y_max - self.y_min) or 1.0)
        return round(self.y0 + share * (self.y1 - self.y0), 1)

    def open(self, label: str, css_class: str) -> str:
        """The <svg> element, its title, and the plot area's background."""
        width, height = self.width, self.height
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" style="{FONT};font-size:12px">'
            f"<title>{escape(label)}</title>"
            f'<rect x="{self.x0}" y="{self.y1}" width="{self.x1 - self.x0}" '
            f'height="{self.y0 - self.y1}" fill="#fbfbfd" stroke="#d0d7de"/>'
        )

    def value_grid(self, ticks: Sequence[float]) -> str:
        """Horizontal grid lines at the value ticks, labelled on the left."""
        return "".join(
            f'<line x1="{self.x0}" y1="{self.y(tick)}" x2="{self.x1}" y2="{self.y(tick)}" '
            'stroke="#eaeef2"/>'
            f'<text x="{self.x0 - 6}" y="{self.y(tick) + 4}" text-anchor="end" fill="#57606a">'
            f"{_fmt(tick)}</text>"
            for tick in ticks
        )

    def y_title(self, title: str) -> str:
        middle = (self.y0 + self.y1) / 2
        return (f'<text x="14" y="{middle}" text-anchor="middle" fill="#24292f" '
                f'transform="rotate(-90 14 {middle})">{escape(title)}</text>')

    def x_title(self, title: str) -> str:
        return (f'<text x="{(self.x0 + self.x1) / 2}" y="{self.height - 3}" '
                f'text-anchor="middle" fill="#24292f">{escape(title)}</text>')

    def legend_entry(self, index: int, entry: str, colour: str) -> str:
        """The `index`-th line of the legend to the right of the plot area."""
        y = self.y1 + 8 + index * 17
        return (f'<rect x="{self.x1 + 14}" y="{y - 8}" width="12" height="12" fill="{colour}"/>'
                f'<text x="{self.x1 + 32}" y="{y + 2}" fill="#24292f">{escape(entry)}</text>')


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 0.05)
    # Rates, gaps and ratios are not negative: no axis below zero when no value is.
    return (low - pad if low < 0 else max(low - pad, 0.0)), high + pad


def _ticked(axis: tuple[float, float]) -> tuple[list[float], tuple[float, float]]:
    """Round ticks over an axis, and the axis widened to take them all in."""
    ticks = nice_ticks(*axis)
    return ticks, (min(ticks[0], axis[0]), max(ticks[-1], axis[1]))


def _whisker(x: float, y_low: float, y_high: float, colour: str) -> str:
    return (
        f'<line x1="{x}" y1="{y_low}" x2="{x}" y2="{y_high}" stroke="{colour}" stroke-width="1.5"/>'
        f'<line x1="{x - 3}" y1="{y_low}" x2="{x + 3}" y2="{y_low}" stroke="{colour}"/>'
        f'<line x1="{x - 3}" y1="{y_high}" x2="{x + 3}" y2="{y_high}" stroke="{colour}"/>'
    )


def time_chart(
    label: str,
    series: Sequence[Series],
    y_label: str,
    rules: Sequence[Rule] = (),
    markers: Sequence[Marker] = (),
    span: tuple[datetime, datetime] | None = None,
    legend: Sequence[tuple[str, str]] | None = None,
    width: int = 860,
    height: int = 280,
) -> str:
    """Estimates with interval whiskers over time.

    `span` fixes the time axis (so that charts of one SLO line up); `legend`
    replaces the one-entry-per-series legend, as (label, colour) pairs.
    """
    points = [p for s in series for p in s.points]
    times = [p.time.timestamp() for p in points]
    start, end = (span[0].timestamp(), span[1].timestamp()) if span else (min(times), max(times))
    if end - start < 3600:
        start, end = start - 1800, end + 1800
    pad = (end - start) * 0.04
    start, end = start - pad, end + pad
    shown_markers = [m for m in markers if start <= m.time.timestamp() <= end]
    values = [v for p in points for v in (p.estimate, p.lower, p.upper) if v is not None]
    values += [rule.value for rule in rules]
    ticks, y_range = _ticked(_y_range(values))
    entries = list(legend) if legend is not None else (
        [(one.label, one.colour) for one in series] if len(series) > 1 else [])
    frame = _Frame(width, height, 56, 150 if entries else 20, 24, 36, (start, end), y_range)
    out = [frame.open(label, "chart time-chart"), frame.value_grid(ticks)]
    x_ticks, step = time_ticks(start, end)
    for index, tick in enumerate(x_ticks):
        x = frame.x(tick)
        out.append(f'<line x1="{x}" y1="{frame.y0}" x2="{x}" y2="{frame.y0 + 4}" '
                   'stroke="#8c959f"/>')
        out.append(f'<text x="{x}" y="{frame.y0 + 17}" text-anchor="middle" fill="#57606a">'
                   f"{escape(time_label(tick, step, index == 0))}</text>")
    out.append(frame.y_title(y_label))
    out.append(f'<text x="{frame.x1}" y="{height - 4}" text-anchor="end" fill="#57606a">'
               "time (UTC)</text>")
    for index, marker in enumerate(sorted(shown_markers, key=lambda m: m.time)):
        x = frame.x(marker.time.timestamp())
        out.append(f'<line x1="{x}" y1="{frame.y0}" x2="{x}" y2="{frame.y1}" stroke="#6e7781" '
                   'stroke-dasharray="2 3"/>')
        # Labels of nearby moments are staggered so that they do not overprint, and
        # turn to the left of their line near the right edge.
        label_y = frame.y1 + 11 + (index % 3) * 12
        if x + 3 + 5.6 * len(marker.label) > frame.x1:
            out.append(f'<text x="{x - 3}" y="{label_y}" text-anchor="end" fill="#6e7781" '
                       f'font-size="10">{escape(marker.label)}</text>')
        else:
            out.append(f'<text x="{x + 3}" y="{label_y}" fill="#6e7781" font-size="10">'
                       f"{escape(marker.label)}</text>")
    for rule in rules:
        y = frame.y(rule.value)
        out.append(f'<line x1="{frame.x0}" y1="{y}" x2="{frame.x1}" y2="{y}" stroke="#cf222e" '
                   'stroke-dasharray="6 4" stroke-width="1.5"/>')
        out.append(f'<text x="{frame.x0 + 4}" y="{y - 4}" fill="#cf222e" font-size="11">'
                   f"{escape(rule.label)}</text>")
    for index, one in enumerate(series):
        # Series are nudged apart so that intervals at the same moment do not hide each other.
        dx = (index - (len(series) - 1) / 2) * 5
        ordered = sorted(one.points, key=lambda p: p.time)
        coordinates = [(frame.x(p.time.timestamp()) + dx, frame.y(p.estimate)) for p in ordered]
        if len(coordinates) > 1:
            # Dotted: the values between two recorded evaluations are not known.
            path = " ".join(f"{x:.1f},{y}" for x, y in coordinates)
            out.append(f'<polyline points="{path}" fill="none" stroke="{one.colour}" '
                       'stroke-width="1.2" stroke-dasharray="2 3" stroke-opacity="0.8"/>')
        for point, (x, y) in zip(ordered, coordinates, strict=True):
            colour = point.colour or one.colour
            if point.lower is not None and point.upper is not None:
                out.append(_whisker(round(x, 1), frame.y(point.lower), frame.y(point.upper),
                                    colour))
            out.append(f'<circle cx="{x:.1f}" cy="{y}" r="4" fill="{colour}" stroke="#ffffff">'
                       f"<title>{escape(point.title)}</title></circle>")
    out += [frame.legend_entry(index, entry, colour)
            for index, (entry, colour) in enumerate(entries)]
    out.append("</svg>")
    return "".join(out)


def forest_chart(label: str, rows: Sequence[Row], x_label: str, rules: Sequence[Rule] = (),
                 width: int = 620) -> str:
    """One line per group: the estimate and its interval; hidden groups say so."""
    height = 44 + 24 * len(rows)
    values = [v for r in rows for v in (r.estimate, r.lower, r.upper) if v is not None]
    values += [rule.value for rule in rules]
    ticks, x_range = _ticked(_y_range(values or [0.0, 1.0]))
    frame = _Frame(width, height, 130, 20, 12, 32, x_range, (0.0, 1.0))
    out = [frame.open(label, "chart forest-chart")]
    for tick in ticks:
        x = frame.x(tick)
        out.append(f'<line x1="{x}" y1="{frame.y0}" x2="{x}" y2="{frame.y1}" stroke="#eaeef2"/>')
        out.append(f'<text x="{x}" y="{frame.y0 + 15}" text-anchor="middle" fill="#57606a">'
                   f"{_fmt(tick)}</text>")
    out.append(frame.x_title(x_label))
    for rule in rules:
        x = frame.x(rule.value)
        out.append(f'<line x1="{x}" y1="{frame.y0}" x2="{x}" y2="{frame.y1}" stroke="#cf222e" '
                   'stroke-dasharray="6 4" stroke-width="1.5"><title>'
                   f"{escape(rule.label)}</title></line>")
    colours = group_colours([r.label for r in rows])
    for index, row in enumerate(rows):
        y = frame.y1 + 18 + index * 24
        out.append(f'<text x="{frame.x0 - 8}" y="{y + 4}" text-anchor="end" fill="#24292f">'
                   f"{escape(row.label)}</text>")
        if row.estimate is None:
            out.append(f'<text x="{frame.x0 + 8}" y="{y + 4}" fill="#6e7781" font-style="italic">'
                       f"{escape(row.title)}</text>")
            continue
        colour = colours.get(row.label, PALETTE[0])
        if row.lower is not None and row.upper is not None:
            out.append(f'<line x1="{frame.x(row.lower)}" y1="{y}" x2="{frame.x(row.upper)}" '
                       f'y2="{y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<circle cx="{frame.x(row.estimate)}" cy="{y}" r="4.5" fill="{colour}">'
                   f"<title>{escape(row.title)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


def line_chart(label: str, x_values: Sequence[float],
               lines: Sequence[tuple[str, str, Sequence[float | None], bool]],
               x_label: str, y_label: str, width: int = 860, height: int = 300) -> str:
    """Lines over a numeric axis (a decision curve): (label, colour, values, dashed) each;
    a None value breaks its line, so a withheld point is never drawn."""
    values = [v for _, _, ys, _ in lines for v in ys if v is not None] or [0.0, 1.0]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 0.05
    ticks, y_range = _ticked((low - pad, high + pad))
    frame = _Frame(width, height, 56, 170, 16, 36, (min(x_values), max(x_values)), y_range)
    out = [frame.open(label, "chart line-chart"), frame.value_grid(ticks)]
    for tick in x_values:
        x = frame.x(tick)
        out.append(f'<text x="{x}" y="{frame.y0 + 17}" text-anchor="middle" fill="#57606a">'
                   f"{_fmt(tick)}</text>")
    out.append(frame.x_title(x_label))
    out.append(frame.y_title(y_label))
    for index, (name, colour, ys, dashed) in enumerate(lines):
        runs: list[list[tuple[float, float]]] = [[]]
        for at, value in zip(x_values, ys, strict=True):
            if value is None:
                runs.append([])
            else:
                runs[-1].append((frame.x(at), frame.y(value)))
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y}" for x, y in run)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                           f'stroke-width="1.8"{dash}><title>{escape(name)}</title></polyline>')
            for x, y in run:
                out.append(f'<circle cx="{x:.1f}" cy="{y}" r="2.5" fill="{colour}"/>')
        out.append(frame.legend_entry(index, name, colour))
    out.append("</svg>")
    return "".join(out)
