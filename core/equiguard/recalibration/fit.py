"""Fitting a per-group recalibration of one method: pure functions over arrays.

Only groups that need it change. For Platt and isotonic that is a group whose
fitting outcomes show it miscalibrated (its observed/expected interval
excludes 1, or its calibration error is confidently above the envelope's
limit); for group thresholds, a group whose rate at the threshold is off the
SLO's target. A group changes only when it has at least `minOutcomesPerGroup`
outcomes both to fit on and to be judged on; the `unknown` group never does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from equiguard.contracts.change_control import Envelope
from equiguard.engine.comparison import Comparison
from equiguard.engine.metrics import MetricTable
from equiguard.engine.spec import OVERALL, UNKNOWN, Slo
from equiguard.engine.subgroups import ALL
from equiguard.recalibration.maps import IsotonicMap, Layer, PlattMap, ScoreMap, ThresholdMap, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# The smallest number of outcomes one step of an isotonic map may describe,
# so no published knot stands for fewer than 11 patients.
MIN_BLOCK = 11
ISOTONIC_BLOCKS = 100
# Group thresholds are chosen on this grid, never at a patient's own score.
THRESHOLD_GRID = np.round(np.arange(0.005, 0.9951, 0.005), 3)
# The rate a group threshold equalises, for each SLO metric it can serve.
EQUALISED = {
    "tpr": "tpr", "fnr": "tpr", "fpr": "fpr", "tnr": "fpr", "selectionRate": "selectionRate"
}  # fmt: skip
_COMPLEMENT = frozenset({"fnr", "tnr"})


@dataclass(frozen=True)
class GroupFit:
    group: str
    changed: bool
    reason: str  # Miscalibrated | Calibrated | OffTarget | OnTarget | TooFewOutcomes
    detail: str = ""


@dataclass(frozen=True)
class Fit:
    method: str
    layer: Layer | None  # None: nothing was fitted (see reason)
    groups: tuple[GroupFit, ...]
    reason: str  # Fitted | InsufficientOutcomes | NoGroupToChange | MethodNotApplicable
    message: str


@dataclass(frozen=True)
class FitInput:
    """The fitting part of the window, seen through one dimension."""

    dimension: str
    declared: tuple[str, ...]  # the dimension's declared groups
    scores: np.ndarray
    labels: np.ndarray
    groups: np.ndarray  # each fitting row's group in the dimension
    holdout_counts: Mapping[str, int]  # labelled held-out outcomes per group
    table: MetricTable  # the serving revision's metrics on the fitting part
    threshold: float  # spec.prediction.threshold


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> PlattMap:
    """Unpenalised logistic regression of the label on logit(score)."""
    model = LogisticRegression(C=np.inf, max_iter=1000)
    model.fit(logit(scores).reshape(-1, 1), labels)
    return PlattMap(float(model.coef_[0, 0]), float(model.intercept_[0]))


def fit_isotonic(scores: np.ndarray, labels: np.ndarray) -> IsotonicMap:
    """Isotonic regression on blocks of at least MIN_BLOCK outcomes in score order."""
    order = np.argsort(scores, kind="stable")
    size = max(MIN_BLOCK, math.ceil(len(scores) / ISOTONIC_BLOCKS))
    blocks = max(1, len(scores) // size)
    # The remainder joins the last block, so every block has at least `size` rows.
    edges = [i * size for i in range(blocks)] + [len(scores)]
    sorted_scores, sorted_labels = scores[order], labels[order]
    means = np.array([sorted_scores[a:b].mean() for a, b in pairwise(edges)])
    rates = np.array([sorted_labels[a:b].mean() for a, b in pairwise(edges)])
    weights = np.diff(edges).astype(np.float64)
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(means, rates, sample_weight=weights)
    return IsotonicMap(
        tuple(float(x) for x in model.X_thresholds_),
        tuple(float(y) for y in model.y_thresholds_),
    )


def rate_at(metric: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """TPR, FPR or selection rate of `score >= threshold` (NaN with no denominator)."""
    positive = scores >= threshold
    if metric == "tpr":
        rows = labels == 1
    elif metric == "fpr":
        rows = labels == 0
    else:
        rows = np.ones(len(scores), dtype=bool)
    return float(positive[rows].mean()) if rows.any() else math.nan


def choose_group_threshold(
    metric: str, scores: np.ndarray, labels: np.ndarray, target: float, threshold: float
) -> float:
    """The grid threshold whose rate is nearest `target` (nearest `threshold` among ties)."""
    best, best_key = threshold, (math.inf, 0.0)
    for candidate in THRESHOLD_GRID:
        rate = rate_at(metric, scores, labels, float(candidate))
        key = (round(abs(rate - target), 12), abs(float(candidate) - threshold))
        if key < best_key:
            best, best_key = float(candidate), key
    return best


def fit_layer(method: str, data: FitInput, envelope: Envelope, slo: Slo | None) -> Fit:
    """One layer of `method` over `data.dimension`, or the reason there is none."""
    if method == "groupThreshold":
        return _fit_thresholds(data, envelope, slo)
    needs = _miscalibrated(data, envelope.acceptance.max_calibration_error)
    return _fit_maps(method, data, envelope, needs)


def _fit_maps(method: str, data: FitInput, envelope: Envelope, needs: Mapping[str, str]) -> Fit:
    results: list[GroupFit] = []
    maps: dict[str, ScoreMap] = {}
    for group in data.declared:
        if group not in needs:
            results.append(GroupFit(group, False, "Calibrated", "within the envelope"))
            continue
        short = _too_few(data, group, envelope.min_outcomes_per_group)
        if short:
            results.append(GroupFit(group, False, "TooFewOutcomes", short))
            continue
        rows = data.groups == group
        scores, labels = data.scores[rows], data.labels[rows]
        maps[group] = (
            fit_platt(scores, labels) if method == "platt" else fit_isotonic(scores, labels)
        )
        results.append(GroupFit(group, True, "Miscalibrated", needs[group]))
    return _result(method, data, maps, results, "miscalibrated")


def _fit_thresholds(data: FitInput, envelope: Envelope, slo: Slo | None) -> Fit:
    if slo is None or slo.metric not in EQUALISED:
        metric = "no SLO" if slo is None else f"the SLO metric {slo.metric}"
        return Fit(
            "groupThreshold", None, (), "MethodNotApplicable",
            f"group thresholds equalise tpr, fnr, fpr, tnr or selectionRate, not {metric}",
        )  # fmt: skip
    reference = _reference_value(data.table, slo)
    if reference is None:
        return Fit(
            "groupThreshold", None, (), "MethodNotApplicable",
            f"the reference {slo.metric} of {slo.name} is undefined on the fitting outcomes",
        )  # fmt: skip
    rate = EQUALISED[slo.metric]
    target = 1.0 - reference if slo.metric in _COMPLEMENT else reference
    results: list[GroupFit] = []
    maps: dict[str, ScoreMap] = {}
    for group in data.declared:
        value = data.table.value(slo.metric, data.dimension, group)
        if value is None or not _off_target(slo, value, reference):
            results.append(GroupFit(group, False, "OnTarget", f"{slo.metric} near the target"))
            continue
        short = _too_few(data, group, envelope.min_outcomes_per_group)
        if short:
            results.append(GroupFit(group, False, "TooFewOutcomes", short))
            continue
        rows = data.groups == group
        chosen = choose_group_threshold(
            rate, data.scores[rows], data.labels[rows], target, data.threshold
        )
        if chosen == data.threshold:
            results.append(GroupFit(group, False, "OnTarget", "the threshold is already nearest"))
            continue
        maps[group] = ThresholdMap(chosen, data.threshold)
        results.append(
            GroupFit(group, True, "OffTarget", f"{rate} target {target:.3f}, threshold {chosen:g}")
        )
    return _result("groupThreshold", data, maps, results, "off its target")


def _result(
    method: str, data: FitInput, maps: dict[str, ScoreMap], results: list[GroupFit], need: str
) -> Fit:
    if maps:
        changed = ", ".join(maps)
        return Fit(
            method, Layer(data.dimension, method, maps), tuple(results), "Fitted",
            f"{method} fitted for {data.dimension} groups {changed}",
        )  # fmt: skip
    short = [r.group for r in results if r.reason == "TooFewOutcomes"]
    if short:
        return Fit(
            method, None, tuple(results), "InsufficientOutcomes",
            f"{data.dimension} groups {', '.join(short)} are {need} but have too few outcomes "
            "to fit and judge a change",
        )  # fmt: skip
    return Fit(
        method, None, tuple(results), "NoGroupToChange",
        f"no {data.dimension} group is {need} on the fitting outcomes",
    )  # fmt: skip


def _miscalibrated(data: FitInput, max_error: float) -> dict[str, str]:
    """Groups whose fitting outcomes show miscalibration, with the evidence."""
    found: dict[str, str] = {}
    for group in data.declared:
        ratio = data.table.interval("observedExpectedRatio", data.dimension, group)
        ece = data.table.interval("ece", data.dimension, group)
        if ratio is not None and not ratio[0] <= 1.0 <= ratio[1]:
            found[group] = f"observed/expected interval {ratio[0]:.2f}..{ratio[1]:.2f} excludes 1"
        elif ece is not None and ece[0] > max_error:
            found[group] = f"calibration error above {max_error:g} (lower bound {ece[0]:.3f})"
    return found


def _too_few(data: FitInput, group: str, minimum: int) -> str:
    fitting = int((data.groups == group).sum())
    held = data.holdout_counts.get(group, 0)
    if fitting >= minimum and held >= minimum:
        return ""
    return f"fewer than {minimum} outcomes to fit on or to judge on"


def _reference_value(table: MetricTable, slo: Slo) -> float | None:
    if slo.comparison == "floor":
        overall = table.value(slo.metric, OVERALL, ALL)
        return None if overall is None else max(overall, slo.threshold)
    if slo.comparison == "maxGap":
        # The middle group: only the groups far from the others move.
        values = [v for g, v in table.by_group(slo.metric, slo.attribute).items()
                  if g != UNKNOWN and v is not None]  # fmt: skip
        return float(np.median(values)) if values else None
    if slo.reference in (None, OVERALL):
        return table.value(slo.metric, OVERALL, ALL)
    return table.reference_value(slo.metric, slo.attribute, slo.reference)


def _off_target(slo: Slo, value: float, reference: float) -> bool:
    """Off by more than half the SLO's allowance, so the held-out outcomes have room."""
    compared = slo.compared
    if compared.is_floor:
        return compared.distance_past(value) > 0.0
    if compared.is_ratio:
        if reference <= 0.0:
            return False
        ratio = value / reference
        half = Comparison(compared.kind, (1.0 + slo.threshold) / 2.0)
        return ratio <= 0.0 or half.distance_past(ratio) > 0.0
    return Comparison(compared.kind, slo.threshold / 2.0).distance_past(value - reference) > 0.0
