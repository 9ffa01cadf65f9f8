"""What the sidecar keeps about a prediction, and what comes back about it later.

Minimum necessary: an identifier to join on, the time, the model revision, the
subgroup each declared attribute fell into, the score and the decision. The
request's features and any other payload are never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TypeGuard

# A request's identifier, as the X-Request-Id header carries it and as an outcome
# names the prediction it joins: one rule for both, so every accepted outcome can join.
REQUEST_ID_RULE = "1 to 128 visible ASCII characters"


def is_request_id(value: object) -> TypeGuard[str]:
    # Visible ASCII is printable ASCII but the space; string methods keep the
    # outcome fast path fast (a regular expression would cost half as much again).
    return (
        type(value) is str
        and 0 < len(value) <= 128
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


@dataclass(frozen=True, slots=True)
class Prediction:
    request_id: str
    time: float  # seconds since the epoch
    revision: str
    groups: Mapping[str, str]  # declared attribute -> its group ("unknown" when undeclared)
    score: float
    decision: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    request_id: str
    label: bool
    # Groups an outcome feed may carry (as EHR feeds do); they fill in
    # attributes the prediction recorded as unknown, never overwrite a known one.
    groups: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Labelled:
    """A prediction joined with its outcome: the unit the statistics count."""

    prediction: Prediction
    label: bool
    # The groups the prediction's score was counted in, when the outcome has
    # since filled some of them in (None: the prediction's groups).
    scored_groups: Mapping[str, str] | None = None

    @property
    def score_groups(self) -> Mapping[str, str]:
        return self.prediction.groups if self.scored_groups is None else self.scored_groups


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """A stored prediction as the score statistics count it (read back after a restart)."""

    time: float
    revision: str
    groups: Mapping[str, str]  # as at prediction time: outcomes never move a score
    score: float
    scored: bool  # this replica counts its score
    joined: bool  # this replica counts its outcome (label coverage)


class ItemStatus(Enum):
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"  # no pending prediction with that id (never seen or expired)
    DUPLICATE = "duplicate"  # that id already has an outcome, or the record already exists
    INVALID = "invalid"
