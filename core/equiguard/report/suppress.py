"""Small cells in the report: checked again, whatever the sources already hid.

Decision records and status are written through the engine's suppression, but
a report is the last step before a document leaves the organisation, so it
checks every group it shows with the engine's own rule (`suppress_small_cells`
on each group's evidence: the count itself, and for a rate its numerator and
the count it leaves out), hides a group whose source already withheld part of
it, and adds the engine's secondary rule within one set of groups: never
exactly one hidden count among counts that add up to a total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from equiguard.contracts.records import GroupPoint
from equiguard.engine.spec import Subgroups
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_small_cells
from equiguard.engine.verdict import Verdict

HIDDEN_MESSAGE = "the figures are hidden because a subgroup count is between 1 and 10"


@dataclass(frozen=True)
class Checked:
    """The groups as they may be shown, and which of them are hidden."""

    groups: tuple[GroupPoint, ...]
    hidden: frozenset[str]


def _hide(point: GroupPoint) -> GroupPoint:
    return replace(point, estimate=None, lower=None, upper=None, n=None, suppressed=True)


def _unsafe_by_engine(
    points: Sequence[GroupPoint], metric: str, attribute: str, layout: CellLayout
) -> set[str]:
    """The groups whose count (or rate numerator, or its complement) the engine would hide."""
    entries = {
        str(index): {
            "verdict": Verdict.INCONCLUSIVE.value,
            "reason": "Check",
            "evidence": {
                "metric": metric,
                "attribute": attribute,
                "group": point.group,
                "n": point.n,
                "groupValue": point.estimate,
            },
        }
        for index, point in enumerate(points)
    }
    checked = suppress_small_cells({"slos": entries}, layout)["slos"]
    return {
        points[int(key)].group
        for key, entry in checked.items()
        if entry["evidence"].get("suppressed")
    }


def check_groups(
    points: Sequence[GroupPoint], metric: str, attribute: str, subgroups: Subgroups
) -> Checked:
    """The groups of one attribute at one evaluation, safe to publish."""
    layout = CellLayout.from_spec(subgroups)
    hidden = {p.group for p in points if p.suppressed}
    # A value without its count cannot be checked, so it is not shown.
    hidden |= {p.group for p in points if p.n is None and p.estimate is not None}
    hidden |= _unsafe_by_engine(points, metric, attribute, layout)
    # The groups' counts add up to the population's: with one hidden, it could be
    # solved for from the others, so hide the smallest other non-zero count too.
    shown = [p for p in points if p.group not in hidden and p.n]
    hidden_counts = [p for p in points if p.group in hidden]
    if len(hidden_counts) == 1 and shown:
        hidden.add(min(shown, key=lambda p: (p.n or 0, p.group)).group)
    return Checked(
        groups=tuple(_hide(p) if p.group in hidden else p for p in points),
        hidden=frozenset(hidden),
    )


def involves_hidden(worst_group: str, hidden: frozenset[str]) -> bool:
    """Whether a summary ("Black vs White", or one group) rests on a hidden group."""
    return any(part.strip() in hidden for part in worst_group.split(" vs ") if part.strip())
