"""Small-cell suppression: the last step before anything leaves the pod.

Counts from 1 to 10 are hidden (primary suppression). So is every value from
which such a count could be recovered: a count that, with published counts,
adds up to a published total (secondary suppression, repeated until no sum
has exactly one hidden term), and every metric or interval computed from a
hidden count. Hidden values become null and are named in `suppressed`; no
value is ever altered or replaced by a fake one. Zero is published: it
identifies nobody.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from equiguard.engine.metrics import COUNTS, RATE_METRICS
from equiguard.engine.spec import METRICS, OVERALL, UNKNOWN
from equiguard.engine.subgroups import ALL, CellLayout

SMALLEST_SHOWN = 11
_Key = tuple[str, str, str]  # (dimension, group, count name)

# Within one group: total = left + right.
_BLOCK_SUMS: tuple[tuple[str, str, str], ...] = (
    ("n", "positives", "negatives"),
    ("n", "predictedPositives", "predictedNegatives"),
    ("positives", "tp", "fn"),
    ("negatives", "fp", "tn"),
    ("predictedPositives", "tp", "fp"),
    ("predictedNegatives", "tn", "fn"),
)
# The count a rate's numerator leaves out of its denominator (fn for tpr).
_COMPLEMENT = {
    "prevalence": "negatives",
    "selectionRate": "predictedNegatives",
    "tpr": "fn",
    "fpr": "tn",
    "fnr": "tp",
    "tnr": "fp",
    "ppv": "fp",
    "npv": "fn",
}
# The counts each metric (and its interval) is computed from.
_DEPENDS: dict[str, tuple[str, ...]] = {
    metric: (*RATE_METRICS[metric], complement) for metric, complement in _COMPLEMENT.items()
}
_DEPENDS.update(
    {
        "observedExpectedRatio": ("positives", "n"),
        "brier": ("n",),
        "ece": ("n",),
        "auroc": ("positives", "negatives"),
        "aurocErrorBound": ("positives", "negatives"),
    }
)


def is_small(count: int) -> bool:
    return 1 <= count < SMALLEST_SHOWN


def suppress_small_cells(report: Mapping[str, Any], layout: CellLayout) -> dict[str, Any]:
    """A copy of a report ({"metrics": ..., "slos": ...}) that is safe to publish.

    Pass `metrics` and `slos` together when both will be published, so that
    a verdict's evidence hides what the metrics hide.
    """
    result: dict[str, Any] = copy.deepcopy(dict(report))
    hidden_metrics: set[tuple[str, str, str]] = set()
    metrics = result.get("metrics")
    if isinstance(metrics, dict):
        hidden_metrics = _suppress_metrics(metrics, layout)
    slos = result.get("slos")
    if isinstance(slos, dict):
        for entry in slos.values():
            _suppress_evidence(entry, hidden_metrics, metrics is not None)
    return result


def _suppress_metrics(
    metrics: dict[str, dict[str, dict[str, Any]]], layout: CellLayout
) -> set[tuple[str, str, str]]:
    values: dict[_Key, int] = {}
    for dimension, groups in metrics.items():
        for group, block in groups.items():
            for name in COUNTS:
                values[(dimension, group, name)] = int(block[name])
    hidden = {key for key, value in values.items() if is_small(value)}
    sums = _sums(metrics, layout, values)
    changed = True
    while changed:
        changed = False
        for terms in sums:
            hidden_terms = [t for t in terms if t in hidden]
            if len(hidden_terms) != 1:
                continue
            # Hide one more non-zero term so the hidden one cannot be solved for:
            # preferably in a group that already hides counts (the same few groups
            # then cover every sum, instead of the suppression spreading), else the
            # smallest.
            partly_hidden = {(d, g) for d, g, _ in hidden}
            candidates = [t for t in terms if t not in hidden and values[t] > 0]
            hidden.add(
                min(candidates, key=lambda t: ((t[0], t[1]) not in partly_hidden, values[t]))
            )
            changed = True
    hidden_metrics: set[tuple[str, str, str]] = set()
    for dimension, groups in metrics.items():
        for group, block in groups.items():
            names = [n for n in COUNTS if (dimension, group, n) in hidden]
            for metric, depends in _DEPENDS.items():
                if any((dimension, group, d) in hidden for d in depends):
                    names.append(metric)
                    hidden_metrics.add((dimension, group, metric))
            for name in names:
                block[name] = None
                if name in METRICS:
                    block["intervals"][name] = None
            block["suppressed"] = names + [f"intervals.{m}" for m in names if m in METRICS]
    return hidden_metrics


def _sums(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    layout: CellLayout,
    values: Mapping[_Key, int],
) -> list[tuple[_Key, ...]]:
    """Every published linear identity `total = sum of terms`, as a set of keys."""
    sums: list[tuple[_Key, ...]] = []
    for dimension, groups in metrics.items():
        for group in groups:
            sums.extend(tuple((dimension, group, name) for name in names) for names in _BLOCK_SUMS)
    for dimension, groups in metrics.items():
        if dimension == OVERALL:
            continue
        for name in COUNTS:
            sums.append((*((dimension, g, name) for g in groups), (OVERALL, ALL, name)))
    attributes = {a.name: a for a in layout.subgroups.attributes}
    for intersection in layout.subgroups.intersections:
        if (
            intersection.name not in metrics
            or values.get((intersection.name, UNKNOWN, "n"), 0) != 0
        ):
            continue  # with rows in `unknown`, the margins are not exact sums of the cells
        for position, part in enumerate(intersection.of):
            for value in attributes[part].groups:
                cells = [g for g in intersection.groups if g.split("/")[position] == value]
                for name in COUNTS:
                    sums.append(
                        (*((intersection.name, g, name) for g in cells), (part, value, name))
                    )
    return sums


def _suppress_evidence(
    entry: dict[str, Any], hidden_metrics: set[tuple[str, str, str]], have_metrics: bool
) -> None:
    evidence = entry.get("evidence")
    if not isinstance(evidence, dict):
        return
    metric, dimension = evidence.get("metric"), evidence.get("attribute")
    suppressed: list[str] = []
    for side, count_key, value_key in (
        ("group", "n", "groupValue"),
        ("reference", "referenceN", "referenceValue"),
    ):
        name = evidence.get(side)
        if name is None:
            continue
        cell = (OVERALL, ALL) if name == OVERALL else (str(dimension), str(name))
        hide = (*cell, str(metric)) in hidden_metrics if have_metrics else False
        hide = hide or _small_from_rate(metric, evidence.get(count_key), evidence.get(value_key))
        if hide:
            suppressed += [count_key, value_key, "estimate", "interval"]
    if not suppressed:
        return
    for key in dict.fromkeys(suppressed):
        evidence[key] = None
    evidence["suppressed"] = list(dict.fromkeys(suppressed))
    entry["message"] = (
        f"{entry.get('verdict')} ({entry.get('reason')}); the figures are hidden "
        "because a subgroup count is between 1 and 10"
    )


def _small_from_rate(metric: object, n: object, value: object) -> bool:
    if not isinstance(n, int):
        return False
    if is_small(n):
        return True
    if metric in RATE_METRICS and isinstance(value, float):
        numerator = round(value * n)
        return is_small(numerator) or is_small(n - numerator)
    return False
