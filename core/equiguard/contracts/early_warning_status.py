"""`status.earlyWarning`: the early warning's last state and its memory between evaluations.

The operator writes the whole block each evaluation; the parts it reads back
are the state and since when it holds, the warnings still waiting for their
labelled verdict (`open`), and the tallies behind the precision of warnings.
The signals, estimates and reference it shows are written fresh each time
and never read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from equiguard.contracts.status import format_time, parse_time

STATES = ("Warning", "Clear", "Unavailable")


@dataclass(frozen=True)
class OpenWarning:
    """A warning on a revision, waiting for a labelled verdict of the SLOs it watched."""

    revision: str
    since: datetime
    slos: tuple[str, ...]
    record: str  # the EarlyWarning record's name

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> OpenWarning:
        return cls(
            revision=str(raw.get("revision", "")),
            since=parse_time(raw["since"]),
            slos=tuple(str(slo) for slo in raw.get("slos", ())),
            record=str(raw.get("record", "")),
        )

    def write(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "since": format_time(self.since),
            "slos": list(self.slos),
            "record": self.record,
        }


@dataclass(frozen=True)
class WarningTally:
    """Warnings raised, decided by labelled verdicts, and borne out by them."""

    raised: int = 0
    decided: int = 0
    borne_out: int = 0

    @property
    def precision(self) -> float | None:
        return self.borne_out / self.decided if self.decided else None

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> WarningTally:
        return cls(
            int(raw.get("raised", 0)), int(raw.get("decided", 0)), int(raw.get("borneOut", 0))
        )

    def write(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "raised": self.raised,
            "decided": self.decided,
            "borneOut": self.borne_out,
        }
        if self.precision is not None:
            out["precision"] = f"{self.precision:.4f}"
        return out


@dataclass(frozen=True)
class EarlyWarningMemory:
    """What the last evaluation's `status.earlyWarning` carries into the next."""

    state: str = ""  # Warning | Clear | Unavailable | "" (never assessed)
    since: datetime | None = None
    # The start of the warning under way: an Unavailable assessment neither ends nor
    # restarts it, so a pod that misses one evaluation does not make a second warning.
    warning_since: datetime | None = None
    open: tuple[OpenWarning, ...] = ()
    tally: WarningTally = WarningTally()

    @classmethod
    def read(cls, raw: Mapping[str, Any] | None) -> EarlyWarningMemory:
        raw = raw or {}
        since, warning_since = raw.get("since"), raw.get("warningSince")
        return cls(
            state=str(raw.get("state", "")),
            since=parse_time(since) if since else None,
            warning_since=parse_time(warning_since) if warning_since else None,
            open=tuple(OpenWarning.read(item) for item in raw.get("open", ())),
            tally=WarningTally.read(raw.get("warnings") or {}),
        )
