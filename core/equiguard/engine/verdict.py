"""The three verdicts of an SLO, and which one wins when they combine.

`Met` means demonstrated (every comparison's bound within the threshold);
`Inconclusive` is never a pass and never a reason to act; `Violated` is a
breach on the confidence bound. Values are the words written in status,
metrics, decision records and reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Verdict(StrEnum):
    MET = "Met"
    VIOLATED = "Violated"
    INCONCLUSIVE = "Inconclusive"


# Precedence, worst first: a breach outweighs missing evidence, which
# outweighs a demonstration.
ORDER: tuple[Verdict, ...] = (Verdict.VIOLATED, Verdict.INCONCLUSIVE, Verdict.MET)


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict of several together; Inconclusive when there are none."""
    return min(verdicts, key=ORDER.index, default=Verdict.INCONCLUSIVE)


def read_verdict(text: object) -> Verdict:
    """A verdict written by another part; anything unrecognised is Inconclusive."""
    try:
        return Verdict(str(text))
    except ValueError:
        return Verdict.INCONCLUSIVE
