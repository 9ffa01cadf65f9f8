"""Which counts could be derived from what is published: a linear-programming audit.

Published counts obey exact linear identities: within a group (n = positives
+ negatives, ...), across a dimension (its groups add up to overall), between
an intersection and its margins (a margin group is its intersection cells
plus the rows whose other part is unknown, which the intersection's `unknown`
cell holds), and between nested windows (a longer window is a shorter one
plus the older part). Every count is a non-negative integer. An attacker who
knows all of that can bound each count that is not published by linear
programming; a count of 1 to 10 is disclosed when its bounds meet, or when
they leave only values from 1 to 10.

`disclosed` runs that attack on the published tables (nested spans, shortest
first) against the true counts, for every population count the tables imply:
each cell of each span, each part between consecutive spans, and each
margin's rows with another part unknown. It is what `suppression` uses to
know that its secondary suppression is enough.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from equiguard.engine.metrics import COUNTS
from equiguard.engine.spec import OVERALL, UNKNOWN
from equiguard.engine.subgroups import ALL, CellLayout
from scipy.optimize import linprog
from scipy.sparse import coo_matrix, hstack, identity

# The counts a published cell carries, as the engine reports them.
COUNT_NAMES = COUNTS
BLOCK_SUMS: tuple[tuple[str, str, str], ...] = (
    ("n", "positives", "negatives"),
    ("n", "predictedPositives", "predictedNegatives"),
    ("positives", "tp", "fn"),
    ("negatives", "fp", "tn"),
    ("predictedPositives", "tp", "fp"),
    ("predictedNegatives", "tn", "fn"),
)
Key = tuple[str, str, str]  # (dimension, group, count name)
# A margin's rows with another part of an intersection unknown:
# (intersection, attribute, value, count name).
Latent = tuple[str, str, str, str]


@dataclass(frozen=True)
class Leak:
    """A count from 1 to 10 that the published tables determine too closely."""

    span: int  # index of the table (or, for part=True, of the part)
    part: bool  # the difference between span and the span before it
    key: Key | Latent
    low: float
    high: float


class _Model:
    """The unknowns (each part's cells and latents) and the identities among them."""

    def __init__(self, layout: CellLayout, parts: int) -> None:
        self.layout = layout
        self.cells: list[Key] = [
            (d, g, name)
            for d in layout.dimensions
            for g in layout.groups[d]
            for name in COUNT_NAMES
        ]
        self.latents: list[Latent] = []
        for intersection in layout.subgroups.intersections:
            for part in intersection.of:
                for value in layout.groups[part][:-1]:
                    self.latents.extend((intersection.name, part, value, n) for n in COUNT_NAMES)
        self.width = len(self.cells) + len(self.latents)
        self.index: dict[Key | Latent, int] = {k: i for i, k in enumerate(self.cells)}
        self.index.update({k: len(self.cells) + i for i, k in enumerate(self.latents)})
        self.parts = parts
        self.rows: list[dict[int, float]] = []
        for j in range(parts):
            for equation in self._identities():
                self.rows.append({j * self.width + self.index[k]: c for k, c in equation.items()})

    def _identities(self) -> list[dict[Key | Latent, float]]:
        layout = self.layout
        out: list[dict[Key | Latent, float]] = []
        for d in layout.dimensions:
            for g in layout.groups[d]:
                for total, left, right in BLOCK_SUMS:
                    out.append({(d, g, total): 1.0, (d, g, left): -1.0, (d, g, right): -1.0})
        for d in layout.dimensions[1:]:
            for name in COUNT_NAMES:
                row: dict[Key | Latent, float] = {(OVERALL, ALL, name): -1.0}
                row.update({(d, g, name): 1.0 for g in layout.groups[d]})
                out.append(row)
        for intersection in layout.subgroups.intersections:
            declared = layout.groups[intersection.name][:-1]
            for position, part in enumerate(intersection.of):
                values = layout.groups[part][:-1]
                for name in COUNT_NAMES:
                    for value in values:
                        row = {
                            (part, value, name): 1.0,
                            (intersection.name, part, value, name): -1.0,
                        }
                        for g in declared:
                            if g.split("/")[position] == value:
                                row[(intersection.name, g, name)] = -1.0
                        out.append(row)
                    # Unknown in the intersection: this part unknown, or another one.
                    row = {(intersection.name, UNKNOWN, name): 1.0, (part, UNKNOWN, name): -1.0}
                    row.update({(intersection.name, part, v, name): -1.0 for v in values})
                    out.append(row)
                for value in values:
                    for total, left, right in BLOCK_SUMS:
                        out.append(
                            {
                                (intersection.name, part, value, total): 1.0,
                                (intersection.name, part, value, left): -1.0,
                                (intersection.name, part, value, right): -1.0,
                            }
                        )
        return out


def disclosed(
    published: Sequence[Mapping[Key, int | None]],
    truth: Sequence[Mapping[Key, int]],
    layout: CellLayout,
    among: Collection[tuple[int, bool, Key | Latent]] | None = None,
) -> list[Leak]:
    """The counts of 1 to 10 that the published tables (nested spans, shortest
    first; None = hidden) let an attacker derive, given the true tables.

    `among` limits the check to those (span, part, key): hiding more can only
    widen the bounds, so a count found safe stays safe.
    """
    model = _Model(layout, len(published))
    true_parts = _parts(model, truth)
    equalities = list(model.rows)
    rhs = [0.0] * len(equalities)
    for k, table in enumerate(published):
        for key, value in table.items():
            if value is None:
                continue
            equalities.append({j * model.width + model.index[key]: 1.0 for j in range(k + 1)})
            rhs.append(float(value))
    a_eq = _matrix(equalities, model.parts * model.width).tocsr()
    b_eq = np.array(rhs)
    at_risk = [
        (span, part, key, objective)
        for span, part, key, objective, value in _quantities(model, true_parts, published)
        if 1 <= value <= 10 and (among is None or (span, part, key) in among)
    ]
    # Safe when some consistent table has the count at 0 or above 10 (the true
    # value lies between, so the bounds cannot meet then). Most are shown safe
    # a batch at a time; the rest one by one.
    objectives = [objective for *_, objective in at_risk]
    open_ = _unresolved(objectives, a_eq, b_eq)
    leaks: list[Leak] = []
    for i in sorted(open_):
        span, part, quantity, objective = at_risk[i]
        low = _extreme(objective, a_eq, b_eq, 1.0)
        if low <= 1e-6:
            continue
        high = _extreme(objective, a_eq, b_eq, -1.0)
        if high < 11.0 - 1e-6:
            leaks.append(Leak(span, part, quantity, low, high))
    return leaks


def _unresolved(objectives: Sequence[Mapping[int, float]], a_eq: Any, b_eq: np.ndarray) -> set[int]:
    """Which counts no batch showed to take 0 or more than 10 in a consistent table."""
    width = a_eq.shape[1]
    q = _matrix(objectives, width).tocsr() if objectives else None
    open_ = set(range(len(objectives)))
    while open_ and q is not None:  # push the open counts down together
        rows = sorted(open_)
        c = np.asarray(q[rows].sum(axis=0)).ravel()
        result = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
        if result.status != 0:
            raise ValueError(f"the published tables are inconsistent: {result.message}")
        at = q[rows] @ result.x
        done = {r for r, v in zip(rows, at, strict=True) if v <= 1e-6}
        if not done:
            break
        open_ -= done
    while open_ and q is not None:  # push them up together, each capped at 11
        rows = sorted(open_)
        m = len(rows)
        capped = hstack([-q[rows], identity(m, format="csr")]).tocsr()
        result = linprog(
            np.concatenate([np.zeros(width), -np.ones(m)]),
            A_ub=capped,
            b_ub=np.zeros(m),
            A_eq=hstack([a_eq, coo_matrix((a_eq.shape[0], m))]).tocsr(),
            b_eq=b_eq,
            bounds=[(0, None)] * width + [(0, 11.0)] * m,
            method="highs",
        )
        if result.status != 0:
            raise ValueError(f"the published tables are inconsistent: {result.message}")
        done = {r for r, t in zip(rows, result.x[width:], strict=True) if t >= 11.0 - 1e-6}
        if not done:
            break
        open_ -= done
    return open_


def _parts(model: _Model, truth: Sequence[Mapping[Key, int]]) -> np.ndarray:
    """The true value of every unknown: part j = table j - table j-1, with latents."""
    tables = np.zeros((model.parts, model.width))
    for k, table in enumerate(truth):
        for key in model.cells:
            tables[k, model.index[key]] = table[key]
        for latent in model.latents:
            intersection, part, value, name = latent
            position = next(
                i
                for i, inter in enumerate(model.layout.subgroups.intersections)
                if inter.name == intersection
            )
            of = model.layout.subgroups.intersections[position].of
            cells = [
                g
                for g in model.layout.groups[intersection][:-1]
                if g.split("/")[of.index(part)] == value
            ]
            tables[k, model.index[latent]] = table[(part, value, name)] - sum(
                table[(intersection, g, name)] for g in cells
            )
    parts = tables.copy()
    parts[1:] -= tables[:-1]
    return parts


def _quantities(
    model: _Model, parts: np.ndarray, published: Sequence[Mapping[Key, int | None]]
) -> list[tuple[int, bool, Key | Latent, dict[int, float], float]]:
    """(span, part?, key, objective, true value) of every population count to protect."""
    out: list[tuple[int, bool, Key | Latent, dict[int, float], float]] = []
    for key, i in model.index.items():
        for k in range(model.parts):
            is_cell = len(key) == 3 and key in published[k]
            if not is_cell or published[k][key] is None:  # type: ignore[index]
                value = float(parts[: k + 1, i].sum())
                out.append((k, False, key, {j * model.width + i: 1.0 for j in range(k + 1)}, value))
            if k > 0:
                out.append((k, True, key, {k * model.width + i: 1.0}, float(parts[k, i])))
    return out


def _matrix(rows: Sequence[Mapping[int, float]], width: int) -> coo_matrix:
    r, c, v = [], [], []
    for i, row in enumerate(rows):
        for j, coefficient in row.items():
            r.append(i)
            c.append(j)
            v.append(coefficient)
    return coo_matrix((v, (r, c)), shape=(len(rows), width))


def _extreme(objective: Mapping[int, float], a_eq: Any, b_eq: np.ndarray, sign: float) -> float:
    """The smallest (sign 1) or largest (sign -1) value of the objective; inf if unbounded."""
    c = np.zeros(a_eq.shape[1])
    for j, coefficient in objective.items():
        c[j] = sign * coefficient
    result = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if result.status == 3:
        return math.inf
    if result.status != 0:
        raise ValueError(f"the published tables are inconsistent: {result.message}")
    return sign * float(result.fun)
