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
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from equiguard.engine.disclosure import Leak, disclosed
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
        "netBenefit": ("tp", "fp", "tn", "fn"),
        "calibrationIntercept": ("positives", "negatives"),
        "calibrationSlope": ("positives", "negatives"),
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
        hidden_metrics = suppress_tables([metrics], layout)[0]
    slos = result.get("slos")
    if isinstance(slos, dict):
        for entry in slos.values():
            _suppress_evidence(entry, hidden_metrics, metrics is not None)
    return result


def suppress_verdicts(
    slos: Mapping[str, Any], hidden_metrics: Collection[tuple[str, str, str]]
) -> dict[str, Any]:
    """A copy of a report's `slos` whose evidence hides what the tables published
    beside it hide: `hidden_metrics` holds each (dimension, group, metric) that
    any of those tables hides."""
    result: dict[str, Any] = copy.deepcopy(dict(slos))
    hidden = set(hidden_metrics)
    for entry in result.values():
        _suppress_evidence(entry, hidden, True)
    return result


def suppress_spans(
    reports: Sequence[Mapping[str, Any]], layout: CellLayout
) -> list[dict[str, Any]]:
    """Copies of the metrics reports of nested spans (shortest first, all ending
    now) suppressed jointly: no count of 1 to 10 follows from any of them, nor
    from their differences."""
    results = [copy.deepcopy(dict(r)) for r in reports]
    suppress_tables([r["metrics"] for r in results], layout)
    return results


def suppress_own_spans(
    tables: Sequence[dict[str, dict[str, dict[str, Any]]]], layout: CellLayout
) -> None:
    """`suppress_spans` in place, on metrics tables the caller has just built and
    owns: copying them first is most of the cost of an evaluation's suppression."""
    suppress_tables(tables, layout)


def suppress_tables(
    tables: Sequence[dict[str, dict[str, dict[str, Any]]]],
    layout: CellLayout,
    given: Sequence[Collection[_Key]] = (),
    frozen: int = 0,
) -> list[set[tuple[str, str, str]]]:
    """Hide counts in place until no table, nor the difference of two, discloses a
    count from 1 to 10; returns each table's hidden metrics.

    `given` holds counts to hide in each table whatever their values; the first
    `frozen` tables were published already: they hide exactly their `given`
    counts and are left as they are, so only the later ones hide more.
    """
    values = [
        {(d, g, name): int(block[name]) for d, groups in t.items() for g, block in groups.items()
         for name in COUNTS}
        for t in tables
    ]  # fmt: skip
    extra = [set(g) for g in given] + [set() for _ in range(len(tables) - len(given))]
    hidden = [
        extra[k] if k < frozen else _secondary(t, layout, v, extra[k])
        for k, (t, v) in enumerate(zip(tables, values, strict=True))
    ]
    among: set[tuple[int, bool, Any]] | None = None  # the first round checks every count
    for _ in range(_MOST_ROUNDS):
        published = [
            {key: (None if key in h else value) for key, value in v.items()}
            for v, h in zip(values, hidden, strict=True)
        ]
        leaks = disclosed(published, values, layout, among)
        if not leaks:
            break
        for leak in leaks:
            _hide_beside(leak, values, hidden, layout, frozen)
        among = {(leak.span, leak.part, leak.key) for leak in leaks}
    else:
        for v, h in zip(values[frozen:], hidden[frozen:], strict=True):
            h.update(key for key, value in v.items() if value > 0)
    return [
        set() if k < frozen else _apply(t, h)
        for k, (t, h) in enumerate(zip(tables, hidden, strict=True))
    ]


_MOST_ROUNDS = 50


def _secondary(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]],
    layout: CellLayout,
    values: Mapping[_Key, int],
    given: Collection[_Key] = (),
) -> set[_Key]:
    """Primary suppression (and the `given` counts), then a hidden term never alone
    in a published sum."""
    hidden = {key for key, value in values.items() if is_small(value)} | set(given)
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
            if not candidates:
                continue
            hidden.add(
                min(candidates, key=lambda t: ((t[0], t[1]) not in partly_hidden, values[t]))
            )
            changed = True
    return hidden


def _hide_beside(
    leak: Leak,
    values: Sequence[Mapping[_Key, int]],
    hidden: list[set[_Key]],
    layout: CellLayout,
    frozen: int = 0,
) -> None:
    """Hide one more published count that shares an identity with a leaked one
    (in a table not yet published: the later of the two when none is)."""
    related = _related(leak.key, layout)
    spans = [leak.span, leak.span - 1] if leak.part else [leak.span]
    spans = [k for k in spans if k >= frozen] or [frozen]
    candidates = [
        (k, key)
        for k in spans
        for key in related
        if key in values[k] and key not in hidden[k] and values[k][key] > 0
    ]
    if not candidates:
        dimension = leak.key[0] if len(leak.key) == 3 else leak.key[1]
        candidates = [
            (k, key) for k in spans for key, value in values[k].items()
            if key[0] in (dimension, OVERALL) and key not in hidden[k] and value > 0
        ]  # fmt: skip
    if not candidates:
        return
    partly = [{(d, g) for d, g, _ in h} for h in hidden]
    k, key = min(
        candidates, key=lambda c: ((c[1][0], c[1][1]) not in partly[c[0]], values[c[0]][c[1]])
    )
    hidden[k].add(key)


def _related(key: tuple[str, ...], layout: CellLayout) -> list[_Key]:
    """The published counts that share an identity with `key` (a cell or a latent)."""
    intersections = {i.name: i for i in layout.subgroups.intersections}
    if len(key) == 4:  # (intersection, attribute, value, name)
        name_, part, value, name = key
        inter = intersections[name_]
        position = inter.of.index(part)
        cells = [g for g in inter.groups if g.split("/")[position] == value]
        return [(part, value, name), (name_, UNKNOWN, name), (part, UNKNOWN, name)] + [
            (name_, g, name) for g in cells
        ]
    dimension, group, name = key
    out: list[_Key] = [(dimension, group, n) for n in COUNTS]
    out += [(dimension, g, name) for g in layout.groups[dimension]] + [(OVERALL, ALL, name)]
    for inter in intersections.values():
        if dimension == inter.name:
            parts = group.split("/") if group != UNKNOWN else []
            for part, value in zip(inter.of, parts, strict=False):
                out.append((part, value, name))
            out += [(part, UNKNOWN, name) for part in inter.of]
        elif dimension in inter.of:
            position = inter.of.index(dimension)
            out += [
                (inter.name, g, name) for g in inter.groups if g.split("/")[position] == group
            ] + [(inter.name, UNKNOWN, name)]
    return out


def _apply(
    metrics: dict[str, dict[str, dict[str, Any]]], hidden: set[_Key]
) -> set[tuple[str, str, str]]:
    """Null the hidden counts and every metric computed from one; returns those metrics."""
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

    def hidden(side: Mapping[str, Any], name: object, count_key: str, value_key: str) -> bool:
        if name is None:
            return False
        cell = (OVERALL, ALL) if name == OVERALL else (str(dimension), str(name))
        hide = (*cell, str(metric)) in hidden_metrics if have_metrics else False
        return hide or _small_from_rate(metric, side.get(count_key), side.get(value_key))

    suppressed: list[str] = []
    for side, count_key, value_key in (
        ("group", "n", "groupValue"),
        ("reference", "referenceN", "referenceValue"),
    ):
        if hidden(evidence, evidence.get(side), count_key, value_key):
            suppressed += [count_key, value_key, "estimate", "interval", "outcomesNeeded"]
    largest = evidence.get("largestGap")
    if isinstance(largest, dict) and (
        hidden(largest, largest.get("group"), "n", "groupValue")
        or hidden(largest, largest.get("reference"), "referenceN", "referenceValue")
    ):
        suppressed.append("largestGap")
    if evidence.get("spanSeconds") is not None:
        _blur_epoch(evidence)
    if not suppressed:
        return
    for key in dict.fromkeys(suppressed):
        evidence[key] = None
    evidence["suppressed"] = list(dict.fromkeys(suppressed))
    entry["message"] = (
        f"{entry.get('verdict')} ({entry.get('reason')}); the figures are hidden "
        "because a subgroup count is between 1 and 10"
    )


def _blur_epoch(evidence: dict[str, Any]) -> None:
    """Evidence read from an epoch (a span no table publishes) leaves without its
    counts and to 3 decimals: with the published windows, exact epoch counts, or
    rates precise enough to recover them as fractions, would disclose the
    counts of the part of the window outside the epoch."""
    for side in (evidence, evidence.get("largestGap") or {}):
        for key in ("n", "referenceN"):
            side[key] = None
        for key in ("estimate", "groupValue", "referenceValue"):
            if isinstance(side.get(key), float):
                side[key] = round(side[key], 3)
    interval = evidence.get("interval")
    if isinstance(interval, list):
        evidence["interval"] = [None if b is None else round(b, 3) for b in interval]


def _small_from_rate(metric: object, n: object, value: object) -> bool:
    if not isinstance(n, int):
        return False
    if is_small(n):
        return True
    if metric in RATE_METRICS and isinstance(value, float):
        numerator = round(value * n)
        return is_small(numerator) or is_small(n - numerator)
    return False
