"""Each comparison an SLO makes: a group against another, a reference or a floor.

The intervals are the engine's fixed-sample ones at a given z (Newcombe for
rates, the MOVER combination of two intervals otherwise, the log scale for
ratios); `slo` chooses the z and judges them. Only declared groups are
compared; a group against overall is compared with everyone else and
rescaled where the metric is a weighted mean of its groups.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
from equiguard.engine.intervals import log_ratio_interval, mover_difference
from equiguard.engine.metrics import (
    DENOMINATOR,
    LOWER_IS_BETTER,
    RATE_METRICS,
    CellSums,
    Estimate,
    estimate,
)
from equiguard.engine.spec import OVERALL, Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import ALL

# Metrics whose overall value is a weighted mean of its groups' values, so a
# group can be compared with everyone else and the result rescaled exactly.
_WEIGHTED_MEANS = frozenset(RATE_METRICS) | {"brier", "observedExpectedRatio", "netBenefit"}


@dataclass(frozen=True)
class GroupComparison:
    """One comparison of a group with a reference (or with the floor)."""

    group: str
    reference: str | None
    estimate: float
    lower: float
    upper: float
    group_value: float
    reference_value: float | None
    n: int
    reference_n: int | None
    eligible: bool  # both sides have minSamples
    defined: bool  # the estimate exists


def comparison_count(slo: Slo, groups: int) -> int:
    """Intervals per evaluation (each two-sided), the multiplicity to correct for."""
    if slo.comparison == "floor" or slo.reference == OVERALL:
        return groups
    if slo.comparison == "maxGap" or slo.reference == "best":
        return max(groups * (groups - 1) // 2, 1)
    return max(groups - 1, 1)


def compare_groups(
    slo: Slo, stats: Statistics, groups: list[str], z: float
) -> tuple[list[GroupComparison], list[str]]:
    index = {cell: i for i, cell in enumerate(stats.cells)}
    rows = np.array([index[(slo.attribute, g)] for g in groups])
    sums = CellSums.of(stats, rows)
    own = estimate(slo.metric, sums, z)
    denominators = sums.counts[DENOMINATOR[slo.metric]]
    enough = denominators >= slo.min_samples
    insufficient = [g for g, ok in zip(groups, enough, strict=True) if not ok]
    if slo.comparison == "floor":
        return [
            GroupComparison(
                g,
                None,
                float(own.value[i]),
                float(own.lower[i]),
                float(own.upper[i]),
                float(own.value[i]),
                None,
                int(denominators[i]),
                None,
                bool(enough[i]),
                not math.isnan(own.value[i]),
            )
            for i, g in enumerate(groups)
        ], insufficient
    if slo.comparison == "maxGap" or slo.reference == "best":
        return _pairs(slo, groups, own, denominators, enough), insufficient
    if slo.reference == OVERALL:
        return _against_overall(slo, stats, index, rows, groups, own, z), insufficient
    assert slo.reference is not None
    ref = groups.index(slo.reference)  # a short reference is already in `insufficient`
    others = np.array([i for i in range(len(groups)) if i != ref], dtype=np.int64)
    return _against(
        slo, groups, own, denominators, enough, others, np.full_like(others, ref)
    ), insufficient


def _pairs(
    slo: Slo, groups: list[str], own: Estimate, denominators: np.ndarray, enough: np.ndarray
) -> list[GroupComparison]:
    if slo.reference == "best":
        candidates = [i for i in range(len(groups)) if enough[i] and not math.isnan(own.value[i])]
        if not candidates:
            return []
        pick = min if slo.metric in LOWER_IS_BETTER else max
        best = pick(candidates, key=lambda i: float(own.value[i]))
        left = np.array([i for i in range(len(groups)) if i != best], dtype=np.int64)
        right = np.full_like(left, best)
    else:
        left_list, right_list = np.triu_indices(len(groups), k=1)
        left, right = left_list.astype(np.int64), right_list.astype(np.int64)
    comparisons = _against(slo, groups, own, denominators, enough, left, right)
    if slo.comparison != "maxGap":
        return comparisons
    return [_orient(c, slo.metric in LOWER_IS_BETTER) for c in comparisons]


def _orient(c: GroupComparison, lower_is_better: bool) -> GroupComparison:
    """A gap as better minus worse (>= 0), the worse group as `group`."""
    if not c.defined:
        return c
    if c.estimate < 0:
        c = replace(
            c,
            estimate=-c.estimate,
            lower=-c.upper,
            upper=-c.lower,
            group=c.reference or "",
            reference=c.group,
            group_value=c.reference_value or 0.0,
            reference_value=c.group_value,
            n=c.reference_n or 0,
            reference_n=c.n,
        )
    # Now `group` has the higher value; it is the worse one only if lower is better.
    if lower_is_better:
        return c
    return replace(
        c,
        group=c.reference or "",
        reference=c.group,
        group_value=c.reference_value or 0.0,
        reference_value=c.group_value,
        n=c.reference_n or 0,
        reference_n=c.n,
    )


def _against(
    slo: Slo,
    groups: list[str],
    own: Estimate,
    denominators: np.ndarray,
    enough: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
) -> list[GroupComparison]:
    """Each groups[left[k]] against groups[right[k]], as independent samples."""
    args = (
        own.value[left],
        own.lower[left],
        own.upper[left],
        own.value[right],
        own.lower[right],
        own.upper[right],
    )
    if slo.comparison == "ratioToReference":
        lower, upper = log_ratio_interval(*args)
        with np.errstate(divide="ignore", invalid="ignore"):
            point = own.value[left] / own.value[right]
        point = np.where(own.value[right] > 0, point, np.nan)
    else:
        lower, upper = mover_difference(*args)
        point = own.value[left] - own.value[right]
    return [
        GroupComparison(
            groups[i],
            groups[j],
            float(point[k]),
            float(lower[k]),
            float(upper[k]),
            float(own.value[i]),
            float(own.value[j]),
            int(denominators[i]),
            int(denominators[j]),
            bool(enough[i] and enough[j]),
            not math.isnan(point[k]),
        )
        for k, (i, j) in enumerate(zip(left.tolist(), right.tolist(), strict=True))
    ]


def _against_overall(
    slo: Slo,
    stats: Statistics,
    index: Mapping[tuple[str, str], int],
    rows: np.ndarray,
    groups: list[str],
    own: Estimate,
    z: float,
) -> list[GroupComparison]:
    overall_row = index[(OVERALL, ALL)]
    overall_sums = CellSums.of(stats, np.array([overall_row]))
    overall = estimate(slo.metric, overall_sums, z)
    denominators = CellSums.of(stats, rows).counts[DENOMINATOR[slo.metric]]
    overall_n = int(overall_sums.counts[DENOMINATOR[slo.metric]][0])
    ref_value = float(overall.value[0])
    if slo.metric in _WEIGHTED_MEANS:
        # overall = w * group + (1 - w) * rest: compare with the rest, then rescale.
        rest = estimate(slo.metric, CellSums.complement(stats, rows, overall_row), z)
        weight = _weights(slo.metric, stats, rows, overall_row, denominators, overall_n)
        if slo.comparison == "ratioToReference":
            lower, upper = log_ratio_interval(
                own.value, own.lower, own.upper, rest.value, rest.lower, rest.upper
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                lower = lower / (weight * lower + 1.0 - weight)
                upper = np.where(
                    np.isinf(upper), 1.0 / weight, upper / (weight * upper + 1.0 - weight)
                )
                point = own.value / ref_value if ref_value > 0 else np.full(len(groups), np.nan)
            everyone = weight >= 1.0
            lower, upper = np.where(everyone, 1.0, lower), np.where(everyone, 1.0, upper)
        else:
            lower, upper = mover_difference(
                own.value, own.lower, own.upper, rest.value, rest.lower, rest.upper
            )
            everyone = weight >= 1.0
            lower = np.where(everyone, 0.0, (1.0 - weight) * lower)
            upper = np.where(everyone, 0.0, (1.0 - weight) * upper)
            point = own.value - ref_value
    else:
        # Treated as independent: conservative, since a group and overall correlate positively.
        n = len(groups)
        args = (
            own.value,
            own.lower,
            own.upper,
            np.full(n, ref_value),
            np.full(n, overall.lower[0]),
            np.full(n, overall.upper[0]),
        )
        if slo.comparison == "ratioToReference":
            lower, upper = log_ratio_interval(*args)
            point = own.value / ref_value if ref_value > 0 else np.full(n, np.nan)
        else:
            lower, upper = mover_difference(*args)
            point = own.value - ref_value
    return [
        GroupComparison(
            g,
            OVERALL,
            float(point[i]),
            float(lower[i]),
            float(upper[i]),
            float(own.value[i]),
            ref_value,
            int(denominators[i]),
            overall_n,
            bool(denominators[i] >= slo.min_samples),
            not math.isnan(point[i]),
        )
        for i, g in enumerate(groups)
    ]


def _weights(
    metric: str,
    stats: Statistics,
    rows: np.ndarray,
    overall_row: int,
    denominators: np.ndarray,
    overall_n: int,
) -> np.ndarray:
    """Each group's share of overall's denominator (of the expected count for O/E)."""
    if metric == "observedExpectedRatio":
        expected = stats.score_sums.sum(axis=(1, 2))
        part, total = expected[rows], float(expected[overall_row])
    else:
        part, total = denominators.astype(np.float64), float(overall_n)
    return part / total if total > 0 else np.zeros(len(rows))
