"""The attribute sets a report can show, chosen by name (`equiguard report --attributes`).

Each set follows one rule's list of source attributes; `hti-1` is the default.
One source-attributes file serves every set: a key means the same text in
each set that asks for it, and a set ignores the keys it does not ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.report import eu_art13, hti
from equiguard.report.material import ReportInput


@dataclass(frozen=True)
class AttributeSet:
    name: str
    title: str
    basis: str  # the rule it follows, in a sentence
    owner_keys: Mapping[str, tuple[str, str]]  # file key -> (category, attribute)
    fill: Callable[[ReportInput, Mapping[str, Any]], list[dict[str, str]]]


SETS: dict[str, AttributeSet] = {
    module.NAME: AttributeSet(
        module.NAME, module.TITLE, module.BASIS, module.OWNER_KEYS, module.source_attributes
    )
    for module in (hti, eu_art13)
}
DEFAULT = hti.NAME
# Every key a source-attributes file may hold, in the order the sets list them.
OWNER_KEYS: tuple[str, ...] = tuple(dict.fromkeys(k for s in SETS.values() for k in s.owner_keys))


def attribute_set(name: str) -> AttributeSet:
    """The set called `name`; KeyError naming the sets there are."""
    try:
        return SETS[name]
    except KeyError:
        raise KeyError(f"no attribute set {name!r}; the sets are {', '.join(SETS)}") from None
