"""Which group a prediction request belongs to, inside a calibrated revision.

The sidecar strips `equiguard_context` before forwarding a request, so the
model server cannot read context attributes itself. The sidecar therefore
forwards the groups it recorded for the request in the header
`X-Equiguard-Groups` (a JSON object: attribute -> group, exactly what it
stores), and those are the groups the calibration was fitted on. When the
header lacks an attribute (a direct call without the sidecar), an attribute
whose source is a body field or a header is read from the request itself;
anything else is `unknown`, whose scores no layer changes.

A request's groups are a function of its attribute values alone, and
requests repeat a few combinations of them; the engine's cell assignment
works on whole columns, so a served request reads its groups from a bounded
memo of that function instead of assigning a one-row column each time.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from equiguard.engine.spec import parse_subgroups
from equiguard.engine.subgroups import CellLayout
from equiguard.recalibration.cells import representative

GROUPS_HEADER = "X-Equiguard-Groups"
# Distinct combinations of attribute values remembered; more are assigned afresh.
MEMO_SIZE = 4096


class GroupResolver:
    def __init__(self, subgroups: Mapping[str, Any], dimensions: tuple[str, ...]) -> None:
        self.layout = CellLayout.from_spec(parse_subgroups(subgroups))
        self.dimensions = dimensions
        self._columns = {d: self.layout.dimensions.index(d) for d in dimensions}
        self._sources: dict[str, tuple[str, str]] = {}
        for attribute in subgroups.get("attributes", []):
            source = attribute.get("source", {})
            for kind in ("field", "header"):
                if kind in source:
                    self._sources[str(attribute["name"])] = (kind, str(source[kind]))
        self._memo = functools.lru_cache(maxsize=MEMO_SIZE)(self._groups_of_key)

    def groups(self, headers: Mapping[str, str], fields: Mapping[str, object]) -> dict[str, str]:
        """The request's group in every dimension the calibration uses."""
        values = self._values(headers, fields)
        # The type is part of the key: True == 1 and 1 == 1.0, but they are not one value.
        key = tuple((name, type(value), value) for name, value in values.items())
        try:
            hash(key)
        except TypeError:  # a value that cannot be a key, such as a list from a body field
            return self._assign(values)
        return dict(self._memo(key))

    def _groups_of_key(self, key: tuple[tuple[str, type, object], ...]) -> dict[str, str]:
        return self._assign({name: value for name, _, value in key})

    def _assign(self, values: Mapping[str, object]) -> dict[str, str]:
        cells = self.layout.assign_one(values)
        return {d: self.layout.cells[int(cells[c])][1] for d, c in self._columns.items()}

    def _values(
        self, headers: Mapping[str, str], fields: Mapping[str, object]
    ) -> dict[str, object]:
        """Each attribute's value: its recorded group's representative, else the request's."""
        recorded = _recorded_groups(_header(headers, GROUPS_HEADER))
        values: dict[str, object] = {}
        for attribute in self.layout.subgroups.attributes:
            if attribute.name in recorded:
                values[attribute.name] = representative(attribute, recorded[attribute.name])
                continue
            kind, key = self._sources.get(attribute.name, ("context", ""))
            if kind == "field":
                values[attribute.name] = fields.get(key)
            elif kind == "header":
                values[attribute.name] = _header(headers, key)
        return values


def _recorded_groups(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {str(k): v for k, v in document.items() if isinstance(v, str)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)
