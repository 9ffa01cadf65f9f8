"""Assign rows to subgroup cells.

A dimension is `overall`, an attribute or an intersection. Every row lands in
exactly one cell of every dimension (`unknown` for a missing or undeclared
value), so the cells of each dimension always sum to `overall`. Cells are
numbered in one flat order shared with `Statistics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from equiguard.engine.spec import OVERALL, UNKNOWN, Attribute, Subgroups

ALL = "all"
CellKey = tuple[str, str]


@dataclass(frozen=True)
class CellLayout:
    subgroups: Subgroups
    dimensions: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]]
    cells: tuple[CellKey, ...]
    _offsets: Mapping[str, int] = field(repr=False)
    _index: Mapping[CellKey, int] = field(repr=False)

    @classmethod
    def from_spec(cls, subgroups: Subgroups) -> CellLayout:
        groups: dict[str, tuple[str, ...]] = {OVERALL: (ALL,)}
        for name in (
            *(a.name for a in subgroups.attributes),
            *(i.name for i in subgroups.intersections),
        ):
            groups[name] = (*subgroups.groups_of(name), UNKNOWN)
        cells: list[CellKey] = []
        offsets: dict[str, int] = {}
        for dimension, names in groups.items():
            offsets[dimension] = len(cells)
            cells.extend((dimension, g) for g in names)
        return cls(
            subgroups=subgroups,
            dimensions=tuple(groups),
            groups=groups,
            cells=tuple(cells),
            _offsets=offsets,
            _index={key: i for i, key in enumerate(cells)},
        )

    def cell_index(self, dimension: str, group: str) -> int:
        return self._index[(dimension, group)]

    def assign(
        self, columns: Mapping[str, Sequence[object] | np.ndarray], n_rows: int
    ) -> np.ndarray:
        """Flat cell indices, int64 of shape (n_rows, len(dimensions)).

        Column-major: each dimension's cells are written, and counted by
        `Statistics.update`, a whole column at a time."""
        out = np.empty((n_rows, len(self.dimensions)), dtype=np.int64, order="F")
        out[:, 0] = 0
        local: dict[str, np.ndarray] = {}
        for attribute in self.subgroups.attributes:
            column = columns.get(attribute.name)
            if column is None:
                codes = np.full(n_rows, len(attribute.groups), dtype=np.int64)
            else:
                if len(column) != n_rows:
                    raise ValueError(
                        f"column {attribute.name!r} has {len(column)} rows, expected {n_rows}"
                    )
                codes = _attribute_codes(attribute, column)
            local[attribute.name] = codes
        for intersection in self.subgroups.intersections:
            code = np.zeros(n_rows, dtype=np.int64)
            known = np.ones(n_rows, dtype=bool)
            for part in intersection.of:
                size = len(self.groups[part]) - 1
                code = code * size + local[part]
                known &= local[part] < size
            local[intersection.name] = np.where(known, code, len(intersection.groups))
        for j, dimension in enumerate(self.dimensions[1:], start=1):
            out[:, j] = local[dimension] + self._offsets[dimension]
        return out

    def assign_one(self, values: Mapping[str, object]) -> np.ndarray:
        """Cell indices of one row, shape (len(dimensions),)."""
        columns = {name: np.array([value], dtype=object) for name, value in values.items()}
        row: np.ndarray = self.assign(columns, 1)[0]
        return row


def _attribute_codes(attribute: Attribute, column: Sequence[object] | np.ndarray) -> np.ndarray:
    """Local group index per row; len(groups) means unknown."""
    # A list keeps each value's own type (numpy would turn [3, "x"] into strings).
    array = column if isinstance(column, np.ndarray) else np.asarray(column, dtype=object)
    unknown = len(attribute.groups)
    if array.dtype.kind in "iuf" and attribute.is_numeric:
        return _band(attribute, array.astype(np.float64))
    # Map each distinct value once: columns have few distinct values.
    if array.dtype.kind == "O":
        uniques, inverse = _object_unique(array)
    else:
        uniques_array, inverse = np.unique(array, return_inverse=True)
        uniques = list(uniques_array.tolist())
    if attribute.is_numeric:
        numbers = np.array([_number(v) for v in uniques], dtype=np.float64)
        unique_codes = _band(attribute, numbers)
    else:
        position = {name: i for i, name in enumerate(attribute.values)}
        unique_codes = np.array(
            [position.get(_text(v) or "", unknown) for v in uniques], dtype=np.int64
        )
    if not uniques:
        return np.full(len(array), unknown, np.int64)
    codes: np.ndarray = unique_codes[inverse.reshape(-1)]
    return codes


def _object_unique(array: np.ndarray) -> tuple[list[object], np.ndarray]:
    # Keyed with whether the value is a boolean: True == 1 and hash(True) == hash(1),
    # but a boolean is never a group and 1 may be one.
    seen: dict[tuple[bool, object], int] = {}
    uniques: list[object] = []
    inverse = np.empty(len(array), dtype=np.int64)
    for i, value in enumerate(array.tolist()):
        try:
            key = (isinstance(value, bool), value)
            code = seen.get(key)
        except TypeError:  # an unhashable value (a list or an object) is not a group
            value, key = None, (False, None)
            code = seen.get(key)
        if code is None:
            code = seen[key] = len(uniques)
            uniques.append(value)
        inverse[i] = code
    return uniques, inverse


def _band(attribute: Attribute, values: np.ndarray) -> np.ndarray:
    edges = np.asarray(attribute.edges, dtype=np.float64)
    codes = np.searchsorted(edges, values, side="right").astype(np.int64) - 1
    unknown = (codes < 0) | ~np.isfinite(values)
    return np.where(unknown, len(attribute.groups), codes)


def _text(value: object) -> str | None:
    """The string a categorical value is matched by (3, 3.0 and "3" match "3")."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _number(value: object) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond floats
        return math.nan
