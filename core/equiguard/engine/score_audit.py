"""The audit of records whose outcomes are missing: what the scores alone say, per group.

Every record counts in `scores`: each group's observed selection rate and,
against a reference (records with outcomes, such as the last good revision's),
the label-free estimates of tpr, fpr and ppv (`estimation`) and the shift
signals (`shift`). One audit is one evaluation, so the shift tests share the
false-alarm budget by a union bound over this evaluation's tests only (no
monitoring correction, as the audit's SLO verdicts have none).

Suppression is the audit's: the labelled table and the table of every record
are suppressed together, since one contains the other (their difference is
the unlabelled records); a group whose count is hidden there shows no
estimate, and a share shows only when the counts it implies are not 1 to 10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from equiguard.engine.estimation import UNAVAILABLE, estimate_rates
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import ShiftSignal, detect_shifts, shift_alpha
from equiguard.engine.spec import OVERALL
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import ALL
from equiguard.engine.suppression import is_small

ESTIMATES = ("tpr", "fpr", "ppv")
DEFAULT_FALSE_ALARM_RATE = 0.01
DEFAULT_MIN_OUTCOMES = 50
_COUNTS_SHOWN = ("n", "predictedPositives", "predictedNegatives")


def current_scores(
    cells: Sequence[tuple[str, str]],
    threshold: float,
    cell_rows: np.ndarray,
    scores: np.ndarray,
    has_outcome: np.ndarray,
) -> ScoreStatistics:
    """Every record's score, and which have their outcome (the label coverage)."""
    current = ScoreStatistics.empty(cells, threshold)
    current.update(cell_rows, scores)
    current.record_outcomes(cell_rows[has_outcome])
    return current


def selection_table(
    every_record: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each group's records, flagged ones and selection rate, from the (suppressed)
    metrics of every record."""
    return {
        dimension: {
            group: {
                "n": block["n"],
                "flagged": block["predictedPositives"],
                "selectionRate": block["selectionRate"],
                "interval": block["intervals"]["selectionRate"],
            }
            for group, block in groups.items()
        }
        for dimension, groups in every_record.items()
    }


def scores_report(
    current: ScoreStatistics,
    every_record: Mapping[str, Mapping[str, Mapping[str, Any]]],
    reference: Statistics | None,
    *,
    confidence: float,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    min_outcomes: int = DEFAULT_MIN_OUTCOMES,
    suppress: bool,
) -> dict[str, Any]:
    """The `scores` section of an audit report; `every_record` is the metrics table
    of every record (suppressed together with the labelled one when `suppress`)."""
    report: dict[str, Any] = {
        "rows": int(current.counts[0].sum()),
        "withOutcome": int(current.labelled[0]),
        "selection": selection_table(every_record),
    }
    if reference is None:
        return report
    hidden = {
        cell
        for cell in current.cells
        if suppress and any(every_record[cell[0]][cell[1]][c] is None for c in _COUNTS_SHOWN)
    }
    estimates: dict[str, dict[str, Any]] = {}
    for estimate in estimate_rates(
        current, reference, confidence=confidence, min_outcomes=min_outcomes
    ):
        entry: dict[str, Any]
        if (estimate.dimension, estimate.group) in hidden:
            entry = {"suppressed": True}
        elif not estimate.available:
            entry = {
                "status": UNAVAILABLE,
                "reason": estimate.reason,
                "message": estimate.calibration.message
                if estimate.n
                else "no predictions in this group",
            }
        else:
            entry = {
                metric: {"value": _number(rate.value), "interval": [rate.lower, rate.upper]}
                for metric, rate in estimate.rates.items()
                if metric in ESTIMATES
            }
        estimates.setdefault(estimate.dimension, {})[estimate.group] = entry
    reference_scores = ScoreStatistics.of_labelled(reference)
    alpha = shift_alpha(false_alarm_rate, len(current.cells), 0.0, plan=None)
    shifts = detect_shifts(current, reference_scores, alpha, plan=None)
    return {
        **report,
        "reference": {"rows": int(reference.histogram[0].sum())},
        "estimates": estimates,
        "shiftAlpha": alpha,
        "shifts": [_shift(s, current, reference_scores, hidden, suppress) for s in shifts],
    }


def render_scores(section: Mapping[str, Any]) -> list[str]:
    """The table lines of a `scores` section."""
    lines = [
        "",
        f"Scores of every record ({_count(section['rows'])} records, "
        f"{_count(section['withOutcome'])} with an outcome)",
    ]
    selection: Mapping[str, Mapping[str, Mapping[str, Any]]] = section["selection"]
    estimates: Mapping[str, Mapping[str, Mapping[str, Any]]] = section.get("estimates") or {}
    width = max(len(g) for groups in selection.values() for g in groups) + 2
    for dimension, groups in selection.items():
        lines.append("")
        heading = f"{dimension:<{width}}{'n':>8}  {'flagged':>8}  {'sel':>6}  {'sel interval':>13}"
        if estimates:
            heading += "  estimated tpr, fpr, ppv (interval)"
        lines.append(heading)
        for group, block in groups.items():
            line = (
                f"{group:<{width}}{_count(block['n']):>8}  {_count(block['flagged']):>8}  "
                f"{_rate(block['selectionRate']):>6}  {_bounds(block['interval']):>13}"
            )
            if estimates:
                line += "  " + _estimate_text(estimates[dimension][group])
            lines.append(line)
    if "shifts" in section:
        shifted = [s for s in section["shifts"] if s["shifted"]]
        total = len(section["shifts"])
        lines += [
            "",
            f"Shift signals against the reference (each test at alpha "
            f"{section['shiftAlpha']:.2g}): {len(shifted)} of {total} shifted",
        ]
        for signal in shifted:
            cut = f" below {signal['cut']:.2f}" if "cut" in signal else ""
            lines.append(
                f"  {signal['signal']}{cut} {signal['dimension']}={signal['group']}: "
                f"{_rate(signal['current'])} now, {_rate(signal['reference'])} on the reference"
            )
    return lines


def _estimate_text(entry: Mapping[str, Any]) -> str:
    if entry.get("suppressed"):
        return "--"
    if entry.get("status") == UNAVAILABLE:
        return f"{UNAVAILABLE} ({entry['reason']})"
    return ", ".join(
        f"{_rate(entry[m]['value'])} ({_bounds(entry[m]['interval'])})" for m in ESTIMATES
    )


def _count(value: object) -> str:
    return "--" if value is None else str(value)


def _rate(value: object) -> str:
    return "--" if value is None else f"{value:.3f}"


def _bounds(bounds: object) -> str:
    if not isinstance(bounds, list):
        return "--" if bounds is None else "n/a"
    return f"{bounds[0]:.3f}-{bounds[1]:.3f}"


def _shift(
    signal: ShiftSignal,
    current: ScoreStatistics,
    reference: ScoreStatistics,
    hidden: set[tuple[str, str]],
    suppress: bool,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "signal": signal.signal,
        "dimension": signal.dimension,
        "group": signal.group,
        "shifted": signal.shifted,
        "current": signal.current,
        "interval": None if signal.interval is None else list(signal.interval),
        "reference": signal.reference,
        "referenceInterval": (
            None if signal.reference_interval is None else list(signal.reference_interval)
        ),
    }
    if signal.cut is not None:
        entry["cut"] = signal.cut
    if not suppress:
        return entry
    cell = (signal.dimension, signal.group)
    row = current.cells.index(cell)
    suppressed: list[str] = []
    if cell in hidden or _implies_small(signal.current, signal.n):
        suppressed += ["current", "interval"]
    reference_n = {
        "scoreDistribution": int(reference.counts[row].sum()),
        "flagRate": int(reference.counts[row].sum()),
        "subgroupMix": int(reference.counts[current.cells.index((OVERALL, ALL))].sum()),
    }.get(signal.signal)
    # labelCoverage's reference is the group's share of the predictions, published above.
    if (cell in hidden and reference_n is None) or (
        reference_n is not None and _implies_small(signal.reference, reference_n)
    ):
        suppressed += ["reference", "referenceInterval"]
    for name in suppressed:
        entry[name] = None
    entry["suppressed"] = suppressed
    return entry


def _implies_small(share: float | None, n: int) -> bool:
    """Whether a share of n reveals a count, or a complement, from 1 to 10."""
    if share is None:
        return is_small(n)
    count = round(share * n)
    return is_small(n) or is_small(count) or is_small(n - count)


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)
