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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linprog

NAMES = ("n", "positives", "negatives", "predictedPositives", "predictedNegatives",
         "tp", "fp", "tn", "fn")  # fmt: skip
WITHIN = (("n", "positives", "negatives"), ("n", "predictedPositives", "predictedNegatives"),
          ("positives", "tp", "fn"), ("negatives", "fp", "tn"),
          ("predictedPositives", "tp", "fp"), ("predictedNegatives", "tn", "fn"))  # fmt: skip


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
    a = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        for j, c in row.items():
            a[i, j] += c
    b = np.array(rhs, dtype=float)
    found = []
    for k, table in enumerate(truth):
        for dim, groups in table.items():
            for group, block in groups.items():
                for name in NAMES:
                    spans = [(f"window {k}", range(k + 1))]
                    if k > 0:
                        spans.append((f"window {k} minus {k - 1}", range(k, k + 1)))
                    for label, parts in spans:
                        true = block[name] - (
                            truth[k - 1][dim][group][name]
                            if label.endswith("minus " + str(k - 1))
                            else 0
                        )
                        if not 1 <= true <= 10:
                            continue
                        c = np.zeros(width)
                        for j in parts:
                            c[var(j, dim, group, name)] = 1
                        low = linprog(c, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
                        high = linprog(-c, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
                        assert low.status == 0, low.message
                        lo = math.ceil(low.fun - 1e-6)
                        hi = math.floor(-high.fun + 1e-6) if high.status == 0 else math.inf
                        if lo == hi or (lo >= 1 and hi <= 10):
                            found.append(f"{label} {dim}/{group} {name} = {true} in [{lo}, {hi}]")
    return found
