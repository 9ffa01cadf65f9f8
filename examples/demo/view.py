"""The live terminal view of the demo: a pure rendering of what was observed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOLD, DIM, RED, GREEN, YELLOW, RESET = (
    "\033[1m",
    "\033[2m",
    "\033[31m",
    "\033[32m",
    "\033[33m",
    "\033[0m",
)
VERDICT_COLOURS = {"Met": GREEN, "Violated": RED, "Inconclusive": YELLOW}
RACE_GROUPS = ("White", "Black", "Asian", "Hispanic", "Other")


@dataclass(frozen=True)
class Observation:
    """What the demo saw at one moment: the model's status and one pod's metrics."""

    elapsed: float
    step: str
    status: Mapping[str, Any]
    race_metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metrics_revision: str = ""
    predictions: int = 0
    outcomes: int = 0
    story: Sequence[str] = ()


def colour(text: str, code: str, enabled: bool) -> str:
    return f"{code}{text}{RESET}" if enabled else text


def _number(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "  — "


def tpr_lines(race_metrics: Mapping[str, Mapping[str, Any]], ansi: bool) -> list[str]:
    lines = [f"  {'group':<10} {'n':>6}  {'TPR':>5}  95% interval   "]
    for group in RACE_GROUPS:
        cell = race_metrics.get(group) or {}
        tpr = cell.get("tpr")
        low, high = (cell.get("intervals") or {}).get("tpr") or (None, None)
        n = cell.get("n")
        bar = ""
        if isinstance(low, float) and isinstance(high, float):
            # A 40-character axis from 0 to 1: the interval as a bar, the estimate as |.
            start, end = int(low * 40), max(int(high * 40), int(low * 40) + 1)
            axis = [" "] * 41
            for i in range(start, end + 1):
                axis[i] = "─"
            if isinstance(tpr, float):
                axis[int(tpr * 40)] = "●"
            bar = "".join(axis)
        shown_n = str(n) if isinstance(n, int) else "suppr."
        interval = f"{_number(low)} to {_number(high)}"
        lines.append(f"  {group:<10} {shown_n:>6}  {_number(tpr):>5}  {interval:<13}  {bar}")
    return lines


def render(observation: Observation, ansi: bool) -> str:
    status = observation.status
    revision = f"revision {observation.metrics_revision or '—'}"
    minutes, seconds = divmod(int(observation.elapsed), 60)
    lines = [
        colour(f"equiguard demo · {minutes:02d}:{seconds:02d} · {observation.step}", BOLD, ansi),
        "",
        f"  serving {status.get('servingRevision', '—')}"
        f"   last good {status.get('lastGoodRevision') or '—'}"
        f"   SLOs met {status.get('sloSummary', '—')}"
        f"   last action {status.get('lastAction') or '—'}",
        f"  traffic: {observation.predictions} predictions, {observation.outcomes} outcomes joined",
        "",
        colour(f"  TPR by race at the decision threshold ({revision})", BOLD, ansi),
        *tpr_lines(observation.race_metrics, ansi),
        "",
        colour("  SLOs", BOLD, ansi),
    ]
    for slo in status.get("slos") or []:
        verdict = str(slo.get("verdict", "—"))
        shown = colour(f"{verdict:<12}", VERDICT_COLOURS.get(verdict, ""), ansi)
        lines.append(f"  {slo.get('name', '?'):<26} {shown} {str(slo.get('message', ''))[:110]}")
    if observation.story:
        lines += [
            "",
            colour("  What happened", BOLD, ansi),
            *(f"  {line}" for line in observation.story),
        ]
    return "\n".join(lines)
