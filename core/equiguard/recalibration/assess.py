"""Acceptance criteria: the candidate against the serving revision on held-out outcomes.

Both are scored on the same held-out rows and measured with the equity engine,
so every number is one the sidecar and the operator would report. Which cells
are judged, and on which estimate, is explained in docs/recalibration.md:

- `allSLOsMet`: every SLO of the model, evaluated once on the candidate's
  held-out statistics, is Met (Inconclusive does not pass).
- `maxAurocDecrease`, `maxBrierIncrease`: the change from the serving
  revision's value, point estimates on the same rows (paired, so sampling
  noise largely cancels), overall and in every judged group.
- `maxCalibrationError`: fails where the candidate's ECE is confidently above
  the limit (the lower bound of its interval), because ECE is biased upward in
  small samples: a perfectly calibrated group of 200 shows ECE above 0.05 most
  of the time.

A group is judged when it is declared and has at least `minOutcomesPerGroup`
held-out outcomes; overall is always judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from equiguard.contracts.change_control import Envelope
from equiguard.engine.metrics import MetricTable, compute_metrics
from equiguard.engine.slo import SloState as _State
from equiguard.engine.slo import SloVerdict, evaluate_slo
from equiguard.engine.spec import OVERALL, UNKNOWN, ModelSpec
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import ALL, CellKey, CellLayout
from equiguard.engine.suppression import is_small
from equiguard.engine.verdict import Verdict

CONFIDENCE = 0.95
_SLACK = 1e-12  # float rounding must not turn "exactly at the limit" into a failure


@dataclass(frozen=True)
class Check:
    """One criterion applied to one cell (or, for allSLOsMet, one SLO)."""

    dimension: str  # "slo" for allSLOsMet
    group: str  # the SLO's name for allSLOsMet
    before: float | str | None
    after: float | str | None
    held: bool
    interval: tuple[float, float] | None = None  # the candidate's, where it decides


@dataclass(frozen=True)
class Criterion:
    name: str  # allSLOsMet | maxAurocDecrease | maxBrierIncrease | maxCalibrationError
    limit: float | None
    held: bool
    message: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Assessment:
    before: MetricTable
    after: MetricTable
    verdicts_before: dict[str, SloVerdict]
    verdicts_after: dict[str, SloVerdict]
    judged: tuple[CellKey, ...]
    not_judged: tuple[CellKey, ...]  # declared groups with too few held-out outcomes
    criteria: tuple[Criterion, ...]

    @property
    def held(self) -> bool:
        return all(c.held for c in self.criteria)

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.held)


def measure(
    spec: ModelSpec, layout: CellLayout, rows: np.ndarray, scores: np.ndarray, labels: np.ndarray
) -> Statistics:
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(rows, scores, labels)
    return stats


def verdicts(spec: ModelSpec, stats: Statistics, now: float) -> dict[str, SloVerdict]:
    """Each SLO judged once on these statistics (no monitoring correction, as an audit)."""
    return {slo.name: evaluate_slo(slo, stats, _State(), now, plan=None)[0] for slo in spec.slos}


def serving_on_holdout(
    spec: ModelSpec, layout: CellLayout, rows: np.ndarray, scores: np.ndarray,
    labels: np.ndarray, now: float,
) -> tuple[MetricTable, dict[str, SloVerdict]]:  # fmt: skip
    stats = measure(spec, layout, rows, scores, labels)
    return compute_metrics(stats, CONFIDENCE), verdicts(spec, stats, now)


def assess(
    spec: ModelSpec,
    envelope: Envelope,
    layout: CellLayout,
    rows: np.ndarray,
    labels: np.ndarray,
    serving: tuple[MetricTable, dict[str, SloVerdict]],
    candidate_scores: np.ndarray,
    now: float,
) -> Assessment:
    """Judge the candidate's held-out scores against the serving revision's."""
    before, verdicts_before = serving
    stats = measure(spec, layout, rows, candidate_scores, labels)
    after, verdicts_after = compute_metrics(stats, CONFIDENCE), verdicts(spec, stats, now)
    minimum = envelope.min_outcomes_per_group
    judged: list[CellKey] = [(OVERALL, ALL)]
    not_judged: list[CellKey] = []
    for dimension, group in layout.cells:
        if dimension == OVERALL or group == UNKNOWN:
            continue
        enough = before.count("n", dimension, group) >= minimum
        (judged if enough else not_judged).append((dimension, group))
    acceptance = envelope.acceptance
    criteria: list[Criterion] = []
    if acceptance.all_slos_met:
        criteria.append(_all_slos_met(verdicts_before, verdicts_after))
    criteria.append(_change("maxAurocDecrease", "auroc", -1.0, acceptance.max_auroc_decrease,
                            before, after, judged))  # fmt: skip
    criteria.append(_change("maxBrierIncrease", "brier", 1.0, acceptance.max_brier_increase,
                            before, after, judged))  # fmt: skip
    criteria.append(_calibration_error(acceptance.max_calibration_error, before, after, judged))
    return Assessment(
        before, after, verdicts_before, verdicts_after, tuple(judged), tuple(not_judged),
        tuple(criteria),
    )  # fmt: skip


def _all_slos_met(before: dict[str, SloVerdict], after: dict[str, SloVerdict]) -> Criterion:
    checks = tuple(
        Check("slo", name, before[name].status, verdict.status, verdict.status == Verdict.MET)
        for name, verdict in after.items()
    )
    failing = [c.group for c in checks if not c.held]
    message = (
        "every SLO is Met on the held-out outcomes"
        if not failing
        else "not Met on the held-out outcomes: "
        + ", ".join(f"{name} ({after[name].status}, {after[name].reason})" for name in failing)
    )
    return Criterion("allSLOsMet", None, not failing, message, checks)


def _change(
    name: str, metric: str, sign: float, limit: float, before: MetricTable, after: MetricTable,
    cells: list[CellKey],
) -> Criterion:  # fmt: skip
    """`sign` -1: a decrease is the harm (AUROC); +1: an increase is (Brier)."""
    checks: list[Check] = []
    for dimension, group in cells:
        old, new = before.value(metric, dimension, group), after.value(metric, dimension, group)
        if old is None or new is None:
            continue  # undefined (e.g. one class only): nothing to compare
        if metric == "auroc" and (
            is_small(before.count("positives", dimension, group))
            or is_small(before.count("negatives", dimension, group))
        ):
            continue  # too few of one class to say anything, and not to be published
        harm = sign * (new - old)
        checks.append(Check(dimension, group, old, new, harm <= limit + _SLACK))
    worst = max(checks, key=lambda c: sign * (float(c.after or 0) - float(c.before or 0)),
                default=None)  # fmt: skip
    failing = [c for c in checks if not c.held]
    word = "decrease" if sign < 0 else "increase"
    if failing:
        listed = ", ".join(
            f"{_cell(c)} {float(c.before or 0):.3f} -> {float(c.after or 0):.3f}" for c in failing
        )
        message = f"{metric} {word}s by more than {limit:g} in {listed}"
    elif worst is not None:
        change = abs(float(worst.after or 0) - float(worst.before or 0))
        message = f"the largest {metric} {word} is {change:.3f} ({_cell(worst)}), within {limit:g}"
    else:
        message = f"{metric} is undefined in every judged group"
    return Criterion(name, limit, not failing, message, tuple(checks))


def _calibration_error(
    limit: float, before: MetricTable, after: MetricTable, cells: list[CellKey]
) -> Criterion:
    checks: list[Check] = []
    for dimension, group in cells:
        new = after.value("ece", dimension, group)
        interval = after.interval("ece", dimension, group)
        if new is None or interval is None:
            continue
        held = interval[0] <= limit + _SLACK
        checks.append(
            Check(dimension, group, before.value("ece", dimension, group), new, held, interval)
        )
    failing = [c for c in checks if not c.held]
    if failing:
        listed = ", ".join(
            f"{_cell(c)} {float(c.after or 0):.3f} (bound {c.interval[0]:.3f})"
            for c in failing
            if c.interval is not None
        )
        message = f"the calibration error is confidently above {limit:g} in {listed}"
    else:
        worst = max(checks, key=lambda c: float(c.after or 0), default=None)
        message = f"no judged group's calibration error is confidently above {limit:g}" + (
            f" (largest {float(worst.after or 0):.3f}, {_cell(worst)})" if worst else ""
        )
    return Criterion("maxCalibrationError", limit, not failing, message, tuple(checks))


def _cell(check: Check) -> str:
    return "overall" if check.dimension == OVERALL else f"{check.dimension}={check.group}"
