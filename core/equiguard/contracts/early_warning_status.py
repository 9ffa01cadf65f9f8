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

from equiguard.contracts.status import format_time, parse_time, read_number

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


def _flag(raw: Mapping[str, Any], key: str) -> bool:
    return raw.get(key) is True


def _names(raw: object) -> tuple[str, ...]:
    return tuple(str(item) for item in raw) if isinstance(raw, list | tuple) else ()


@dataclass(frozen=True)
class EstimateShown:
    """One watched estimate as status and an `EarlyWarning` record show it."""

    slo: str
    metric: str
    attribute: str
    comparison: str  # maxGap | floor
    threshold: str
    breached: bool
    judged: bool
    reason: str  # why it was not judged
    groups: tuple[str, ...]  # the decisive pair (maxGap) or group (floor)
    estimate: float | None
    lower: float | None
    upper: float | None
    labelled_verdict: str = ""  # status only: the SLO's Met or Violated on labels

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> EstimateShown:
        groups = str(raw.get("groups", ""))
        return cls(
            slo=str(raw.get("slo", "")),
            metric=str(raw.get("metric", "")),
            attribute=str(raw.get("attribute", "")),
            comparison=str(raw.get("comparison", "")),
            threshold=str(raw.get("threshold", "")),
            breached=_flag(raw, "breached"),
            judged=_flag(raw, "judged"),
            reason=str(raw.get("reason", "")),
            groups=tuple(g.strip() for g in groups.split(" vs ") if g.strip()),
            estimate=read_number(raw.get("estimate")),
            lower=read_number(raw.get("lower")),
            upper=read_number(raw.get("upper")),
            labelled_verdict=str(raw.get("labelledVerdict", "")),
        )


# What `firing` calls the watched estimates, beside the signal kinds.
ESTIMATES = "estimates"


@dataclass(frozen=True)
class WarningEvidence:
    """What a warning rests on: `spec.earlyWarning` of an `EarlyWarning` record."""

    state: str
    revision: str
    reference_revision: str
    signals_fired: int
    signal_kinds: tuple[str, ...]  # of the signals shown, first seen first
    estimates: tuple[EstimateShown, ...]

    @property
    def firing(self) -> tuple[str, ...]:
        """The kinds that fired: signal kinds, then `estimates` if one is past its threshold."""
        breached = any(e.breached for e in self.estimates)
        return (*self.signal_kinds, *((ESTIMATES,) if breached else ()))

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> WarningEvidence:
        signals = [s for s in raw.get("signals", ()) if isinstance(s, Mapping)]
        kinds = tuple(dict.fromkeys(str(s.get("signal", "")) for s in signals))
        reference = raw.get("reference")
        return cls(
            state=str(raw.get("state", "")),
            revision=str(raw.get("revision", "")),
            reference_revision=str(
                reference.get("revision", "") if isinstance(reference, Mapping) else ""
            ),
            signals_fired=int(raw.get("signalsFired", 0)),
            signal_kinds=kinds,
            estimates=tuple(
                EstimateShown.read(e) for e in raw.get("estimates", ()) if isinstance(e, Mapping)
            ),
        )


@dataclass(frozen=True)
class WarningResolution:
    """How labels decided a warning: `spec.earlyWarning` of an `EarlyWarningResolved` record."""

    warning_record: str
    raised_at: datetime | None
    borne_out: bool
    slos: tuple[str, ...]

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> WarningResolution:
        raised = raw.get("raisedAt")
        return cls(
            warning_record=str(raw.get("warningRecord", "")),
            raised_at=parse_time(raised) if isinstance(raised, str) and raised else None,
            borne_out=_flag(raw, "borneOut"),
            slos=_names(raw.get("slos")),
        )


@dataclass(frozen=True)
class EarlyWarningStatus:
    """`status.earlyWarning` as a reader (the report) shows it: memory, then what it saw last."""

    memory: EarlyWarningMemory
    reason: str
    message: str
    revision: str
    action: str
    watching: tuple[str, ...]
    firing: tuple[str, ...]
    holding_rollout: bool
    estimates: tuple[EstimateShown, ...]

    @classmethod
    def read(cls, raw: Mapping[str, Any] | None) -> EarlyWarningStatus | None:
        """None when the status has no early warning."""
        if not raw:
            return None
        return cls(
            memory=EarlyWarningMemory.read(raw),
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            revision=str(raw.get("revision", "")),
            action=str(raw.get("action", "")),
            watching=_names(raw.get("watching")),
            firing=_names(raw.get("firing")),
            holding_rollout=_flag(raw, "holdingRollout"),
            estimates=tuple(
                EstimateShown.read(e) for e in raw.get("estimates", ()) if isinstance(e, Mapping)
            ),
        )
