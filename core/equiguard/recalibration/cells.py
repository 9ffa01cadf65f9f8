"""Stored subgroup labels back to the engine's cells.

The prediction store keeps, per row, the group each declared attribute fell
into (a numeric attribute's band label, such as "45-64"). The engine assigns
cells from raw values, so a stored group is read back through a value that
lies in it: the group itself for a categorical attribute, the band's lower
edge for a numeric one. The sidecar's statistics do the same, so the cells
here are the cells the SLOs were judged on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from equiguard.engine.spec import UNKNOWN, Attribute, Subgroups
from equiguard.engine.subgroups import CellLayout


def representative(attribute: Attribute, group: object) -> object:
    """A value the engine assigns to `group` of `attribute`; None (unknown) if undeclared."""
    if not isinstance(group, str) or group == UNKNOWN:
        return None
    if attribute.is_numeric:
        bands = dict(zip(attribute.labels, attribute.edges, strict=True))
        return bands.get(group)
    return group if group in attribute.values else None


def cell_rows(layout: CellLayout, groups: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    """The engine's cell indices (n_rows, dimensions) of rows given by their stored groups."""
    columns: dict[str, np.ndarray] = {}
    for attribute in layout.subgroups.attributes:
        stored = groups.get(attribute.name)
        if stored is None:
            continue
        values = {g: representative(attribute, g) for g in set(stored.tolist())}
        columns[attribute.name] = np.array([values[g] for g in stored.tolist()], dtype=object)
    return layout.assign(columns, n_rows)


def dimension_groups(layout: CellLayout, rows: np.ndarray, dimension: str) -> np.ndarray:
    """Each row's group name in `dimension` (an attribute or intersection)."""
    column = layout.dimensions.index(dimension)
    names = np.array([group for _, group in layout.cells], dtype=object)
    result: np.ndarray = names[rows[:, column]]
    return result


def declared_dimensions(subgroups: Subgroups) -> tuple[str, ...]:
    return (
        *(a.name for a in subgroups.attributes),
        *(i.name for i in subgroups.intersections),
    )
