"""Releases: what open outputs publish over time, so that successive answers disclose nothing.

A reader who asks twice learns what changed in between: the outcomes joined
meanwhile, a count that can be small. Prometheus keeps every scrape, so any
two answers can be compared. Published tables therefore change only at
releases, one per bucket of the window (within a bucket every answer is the
same), and each release is suppressed jointly with the one before it.

While a window only grows (no bucket holding data has left it since the
previous release, as in the first window of a new revision), the previous
release is a part of the new one, exactly as a shorter window is part of a
longer one: the difference is the outcomes joined in between. The pair is
then suppressed like two nested spans (`suppression`), with the previous
release frozen as published; a count it hid stays hidden, since its last
published value and a new one would give away the difference. Once a bucket
with data has left the window, the difference mixes the outcomes that came
with those that went, and bounds neither.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from equiguard.engine.metrics import COUNTS
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_tables

Table = dict[str, dict[str, dict[str, Any]]]  # a metrics report: dimension -> group -> block
Key = tuple[str, str, str]  # (dimension, group, count name)
_MOST_ROUNDS = 10


@dataclass(frozen=True)
class Release:
    """One revision's published windows at one release (a bucket of the window)."""

    bucket: int
    truth: tuple[Table, ...]  # each window's metrics as computed, shortest window first
    published: tuple[Table, ...]  # the same, suppressed
    hidden: tuple[frozenset[Key], ...]  # each window's hidden counts


def release(
    truth: Sequence[Table],
    layout: CellLayout,
    bucket: int,
    previous: Release | None = None,
    grown: Sequence[bool] = (),
) -> Release:
    """Suppress the metrics of nested windows ending now (shortest first), jointly
    with each other and with the previous release of every window that only
    grew since (`grown`, one flag per window)."""
    paired = [w for w in range(len(truth)) if previous is not None and w < len(grown) and grown[w]]
    given: list[set[Key]] = [set() for _ in truth]
    for w in paired:
        assert previous is not None
        given[w] |= previous.hidden[w]  # hidden before: stays hidden while the window grows
    for _ in range(_MOST_ROUNDS):
        published = [copy.deepcopy(table) for table in truth]
        suppress_tables(published, layout, given)
        hidden = [hidden_counts(table) for table in published]
        more = False
        for w in paired:
            assert previous is not None
            pair = [copy.deepcopy(previous.truth[w]), copy.deepcopy(truth[w])]
            suppress_tables(pair, layout, [previous.hidden[w], hidden[w]], frozen=1)
            needed = hidden_counts(pair[1]) - hidden[w]
            if needed:
                given[w] |= needed
                more = True
        if not more:
            break
    else:  # not settled: publish no count of the windows that would need more
        for w in paired:
            given[w] |= set(_counts(truth[w]))
        published = [copy.deepcopy(table) for table in truth]
        suppress_tables(published, layout, given)
        hidden = [hidden_counts(table) for table in published]
    return Release(
        bucket,
        tuple(truth),
        tuple(published),
        tuple(frozenset(h) for h in hidden),
    )


def hidden_counts(table: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> set[Key]:
    """The counts a suppressed table hides."""
    return {
        (dimension, group, name)
        for dimension, groups in table.items()
        for group, block in groups.items()
        for name in COUNTS
        if block.get(name) is None
    }


def _counts(table: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[Key]:
    return [
        (dimension, group, name)
        for dimension, groups in table.items()
        for group, block in groups.items()
        for name in COUNTS
        if block.get(name)
    ]
