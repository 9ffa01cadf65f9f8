"""The prediction store: what must survive a restart, behind one small interface.

One implementation per backend: SQLite (a file on the pod's volume, the
default) and PostgreSQL (shared by the replicas of a model, so an outcome
joins whichever replica served the prediction). Every call runs on the
writer's own thread, never on the event loop.

A labelled row is counted by exactly one replica, its `owner`: the replica
that joined it (or accepted the record). That is what makes the sum of the
replicas' statistics equal the pooled statistics. A prediction's score is
counted by the replica that stored it (its `scorer`), its label coverage by
its `owner`; so the score statistics sum exactly too. An outcome that fills
in unknown groups never moves the score: the groups at prediction time are
kept beside the filled ones (`scored_groups`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from equiguard.sidecar.records import ItemStatus, Labelled, Outcome, Prediction, ScoredRow

UNKNOWN_GROUP = "unknown"


@dataclass
class WriteBatch:
    """Everything queued since the last commit, written in one transaction."""

    predictions: list[Prediction] = field(default_factory=list)
    records: list[tuple[Prediction, bool | None]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.predictions) + len(self.records) + len(self.outcomes)


@dataclass
class WriteResult:
    record_status: list[ItemStatus]
    outcome_status: list[ItemStatus]
    labelled: list[Labelled]  # rows this replica now counts, in commit order
    # Predictions (and records) newly stored, whose scores this replica counts.
    scored: list[Prediction] = field(default_factory=list)


@dataclass
class Upkeep:
    pending: int  # predictions still waiting for an outcome
    adopted: list[Labelled]  # rows of replicas gone silent, counted here from now on
    evicted: bool  # another replica adopted ours (we were silent): rebuild from the store
    # Scores of predictions stored by replicas gone silent, counted here from now on.
    adopted_scores: list[ScoredRow] = field(default_factory=list)


class PredictionStore(Protocol):
    def write(self, batch: WriteBatch, now: float) -> WriteResult:
        """Commit a batch atomically: predictions, then records, then outcomes."""

    def labelled(self, since: float) -> Iterator[Labelled]:
        """The labelled rows this replica counts with a prediction time >= since."""

    def scored(self, since: float) -> Iterator[ScoredRow]:
        """The predictions made at or after `since` whose score or outcome this replica counts."""

    def upkeep(self, now: float, pending_before: float, labelled_before: float) -> Upkeep:
        """Expire old rows, renew this replica's lease, adopt rows of silent replicas."""

    def close(self) -> None: ...


def fill_unknown(groups: Mapping[str, str], reported: Mapping[str, str]) -> dict[str, str] | None:
    """The prediction's groups with unknown ones filled from an outcome; None if unchanged."""
    filled = dict(groups)
    changed = False
    for attribute, group in reported.items():
        if filled.get(attribute, UNKNOWN_GROUP) == UNKNOWN_GROUP and group != UNKNOWN_GROUP:
            filled[attribute] = group
            changed = True
    return filled if changed else None


def join_outcome(prediction: Prediction, outcome: Outcome) -> tuple[Labelled, bool]:
    """The labelled prediction, and whether the outcome filled groups that must be stored."""
    filled = fill_unknown(prediction.groups, outcome.groups) if outcome.groups else None
    if filled is None:
        return Labelled(prediction, outcome.label), False
    return Labelled(replace(prediction, groups=filled), outcome.label, prediction.groups), True


def first_occurrences(outcomes: Sequence[Outcome]) -> tuple[dict[str, int], set[int]]:
    """Index of the first outcome per request id, and the positions repeating one."""
    first: dict[str, int] = {}
    repeats: set[int] = set()
    for position, outcome in enumerate(outcomes):
        if outcome.request_id in first:
            repeats.add(position)
        else:
            first[outcome.request_id] = position
    return first, repeats
