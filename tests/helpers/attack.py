"""An attacker of published tables: bounds every unpublished count by linear programming.

Written apart from the engine's own audit (`equiguard.engine.disclosure`) so
that each checks the other. It reads only what was published (the metrics
JSON of one or more nested windows, shortest first) and what any reader
knows: counts are non-negative integers; within a group n = positives +
negatives = predicted positives + predicted negatives, positives = tp + fn,
negatives = fp + tn, predicted positives = tp + fp, predicted negatives = tn
+ fn; a dimension's groups add up to overall; an intersection's cells with a
given value of one part, plus the rows of that value whose other part is
unknown, add up to the margin group; the intersection's unknown cell holds
exactly the rows with some part unknown; a longer window holds a shorter one.

A reader of several outputs of one window (/v1/metrics, the Prometheus
exposition, a verdict's evidence) knows every count any of them shows:
`combined` merges them into one table for the attack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

NAMES = ("n", "positives", "negatives", "predictedPositives", "predictedNegatives",
         "tp", "fp", "tn", "fn")  # fmt: skip
WITHIN = (("n", "positives", "negatives"), ("n", "predictedPositives", "predictedNegatives"),
          ("positives", "tp", "fn"), ("negatives", "fp", "tn"),
          ("predictedPositives", "tp", "fp"), ("predictedNegatives", "tn", "fn"))  # fmt: skip
# (numerator, denominator) of each rate, as any reader of the metric's definition knows.
RATES = {"prevalence": ("positives", "n"), "selectionRate": ("predictedPositives", "n"),
         "tpr": ("tp", "positives"), "fpr": ("fp", "negatives"), "fnr": ("fn", "positives"),
         "tnr": ("tn", "negatives"), "ppv": ("tp", "predictedPositives"),
         "npv": ("tn", "predictedNegatives")}  # fmt: skip


def attack(
    published: Sequence[Mapping[str, Any]],
    intersections: Mapping[str, Sequence[str]],
    truth: Sequence[Mapping[str, Any]],
) -> list[str]:
    """Counts from 1 to 10 (true value, from `truth`, the unsuppressed metrics of the
    same windows) that the published metrics determine: exactly, or within 1..10."""
    variables: dict[tuple[Any, ...], int] = {}

    def var(*key: Any) -> int:
        return variables.setdefault(key, len(variables))

    rows: list[dict[int, float]] = []
    rhs: list[float] = []
    first = published[0]
    for part in range(len(published)):
        for dim, groups in first.items():
            for group in groups:
                for total, left, right in WITHIN:
                    rows.append({var(part, dim, group, total): 1, var(part, dim, group, left): -1,
                                 var(part, dim, group, right): -1})  # fmt: skip
                    rhs.append(0)
            if dim != "overall":
                for name in NAMES:
                    row = {var(part, dim, g, name): 1.0 for g in groups}
                    row[var(part, "overall", "all", name)] = -1
                    rows.append(row)
                    rhs.append(0)
        for inter, parts in intersections.items():
            cells = [g for g in first[inter] if g != "unknown"]
            for position, attribute in enumerate(parts):
                values = [g for g in first[attribute] if g != "unknown"]
                for name in NAMES:
                    for value in values:
                        row = {
                            var(part, attribute, value, name): 1.0,
                            var(part, "rest", inter, attribute, value, name): -1.0,
                        }
                        for cell in cells:
                            if cell.split("/")[position] == value:
                                row[var(part, inter, cell, name)] = -1
                        rows.append(row)
                        rhs.append(0)
                    row = {
                        var(part, inter, "unknown", name): 1.0,
                        var(part, attribute, "unknown", name): -1.0,
                    }
                    for value in values:
                        row[var(part, "rest", inter, attribute, value, name)] = -1
                    rows.append(row)
                    rhs.append(0)
    for k, table in enumerate(published):
        for dim, groups in table.items():
            for group, block in groups.items():
                for name in NAMES:
                    if block[name] is not None:
                        rows.append({var(j, dim, group, name): 1.0 for j in range(k + 1)})
                        rhs.append(block[name])
    width = len(variables)
    entries = [(i, j, c) for i, row in enumerate(rows) for j, c in row.items()]
    r, col, v = zip(*entries, strict=True)
    a = coo_matrix((v, (r, col)), shape=(len(rows), width)).tocsr()
    b = np.array(rhs, dtype=float)
    found = []
    for k, table in enumerate(truth):
        for dim, groups in table.items():
            for group, block in groups.items():
                for name in NAMES:
                    # The window itself, and its difference with every shorter window.
                    spans = [(f"window {k}", range(k + 1), 0)]
                    spans += [
                        (f"window {k} minus {i}", range(i + 1, k + 1), truth[i][dim][group][name])
                        for i in range(k)
                    ]
                    for label, parts, shorter in spans:
                        true = block[name] - shorter
                        if not 1 <= true <= 10:
                            continue
                        c = np.zeros(width)
                        for j in parts:
                            c[var(j, dim, group, name)] = 1
                        low = linprog(c, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
                        assert low.status == 0, low.message
                        lo = math.ceil(low.fun - 1e-6)
                        if lo < 1:  # 0 is possible: nothing is disclosed
                            continue
                        high = linprog(-c, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
                        hi = math.floor(-high.fun + 1e-6) if high.status == 0 else math.inf
                        if lo == hi or (lo >= 1 and hi <= 10):
                            found.append(f"{label} {dim}/{group} {name} = {true} in [{lo}, {hi}]")
    return found


def combined(*outputs: Mapping[str, Any]) -> dict[str, Any]:
    """What a reader of several outputs of the same window knows: each count that any
    of them shows (they must agree). An output may show only some counts of a cell."""
    merged: dict[str, Any] = {}
    for output in outputs:
        for dim, groups in output.items():
            for group, block in groups.items():
                into = merged.setdefault(dim, {}).setdefault(group, dict.fromkeys(NAMES))
                for name in NAMES:
                    value = block.get(name)
                    if value is None:
                        continue
                    assert into[name] in (None, value), f"{dim}/{group} {name} disagrees"
                    into[name] = value
    return merged


def from_exposition(text: str, prefix: str = "equiguard_window_") -> dict[str, dict[str, Any]]:
    """The counts of a Prometheus exposition, per window label: {window: {dim: {group: ...}}}."""
    names = {"true_positives": "tp", "false_positives": "fp",
             "true_negatives": "tn", "false_negatives": "fn"}  # fmt: skip
    tables: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            short = sample.name.removeprefix(prefix).removesuffix("_total")
            if not sample.name.startswith(prefix) or short not in names:
                continue
            labels = sample.labels
            table = tables.setdefault(labels.get("window", "since start"), {})
            block = table.setdefault(labels["attribute"], {}).setdefault(labels["group"], {})
            block[names[short]] = round(sample.value)
    return tables


def from_evidence(slos: Mapping[str, Any]) -> dict[str, Any]:
    """The counts a verdict's evidence gives away: the denominator n of each side
    shown and, for a rate, its numerator (the rate times n, rounded)."""
    shown: dict[str, Any] = {}
    for entry in slos.values():
        evidence = entry["evidence"]
        metric, dim = evidence["metric"], evidence["attribute"]
        sides = [(evidence, "group", "n", "groupValue"),
                 (evidence, "reference", "referenceN", "referenceValue")]  # fmt: skip
        largest = evidence.get("largestGap")
        if largest:
            sides += [(largest, "group", "n", "groupValue"),
                      (largest, "reference", "referenceN", "referenceValue")]  # fmt: skip
        for side, group_key, n_key, value_key in sides:
            group, n, value = side.get(group_key), side.get(n_key), side.get(value_key)
            if group is None or n is None:
                continue
            cell = ("overall", "all") if group == "overall" else (dim, group)
            block = shown.setdefault(cell[0], {}).setdefault(cell[1], {})
            numerator, denominator = RATES.get(metric, (None, "n"))
            block[denominator] = n
            if numerator is not None and value is not None:
                block[numerator] = round(value * n)
    return shown
