"""The ClinicalModel's status as typed values, and back.

The status is the operator's memory between evaluations (revision history,
recent actions, each SLO's verdict and carried engine state): the decision
function reads it from here and returns a new one, so nothing lives only in the
operator's process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from equiguard.engine.verdict import Verdict, read_verdict


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, as Kubernetes writes times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_precise_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, for times that measure latency."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _optional_time(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    return parse_time(value) if value else None


@dataclass(frozen=True)
class RevisionRecord:
    """One revision in the history, with its SLO record."""

    revision: str
    image: str
    generation: int
    first_served: datetime
    last_served: datetime
    met_since: datetime | None = None
    qualified_at: datetime | None = None
    quarantined_at: datetime | None = None
    quarantine_reason: str = ""
    evaluations: int = 0
    violations: int = 0
    derived_from: str = ""  # for a promoted recalibration, the revision it recalibrates
    method: str = ""  # and the recalibration method

    @property
    def quarantined(self) -> bool:
        return self.quarantined_at is not None

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> RevisionRecord:
        return cls(
            revision=raw["revision"],
            image=raw.get("image", ""),
            generation=int(raw.get("generation", 0)),
            first_served=parse_time(raw["firstServed"]),
            last_served=parse_time(raw.get("lastServed", raw["firstServed"])),
            met_since=_optional_time(raw, "metSince"),
            qualified_at=_optional_time(raw, "qualifiedAt"),
            quarantined_at=_optional_time(raw, "quarantinedAt"),
            quarantine_reason=raw.get("quarantineReason", ""),
            evaluations=int(raw.get("evaluations", 0)),
            violations=int(raw.get("violations", 0)),
            derived_from=raw.get("derivedFrom", ""),
            method=raw.get("method", ""),
        )

    def write(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "revision": self.revision,
            "image": self.image,
            "generation": self.generation,
            "firstServed": format_time(self.first_served),
            "lastServed": format_time(self.last_served),
            "evaluations": self.evaluations,
            "violations": self.violations,
        }
        if self.met_since is not None:
            out["metSince"] = format_time(self.met_since)
        if self.qualified_at is not None:
            out["qualifiedAt"] = format_time(self.qualified_at)
        if self.quarantined_at is not None:
            out["quarantinedAt"] = format_time(self.quarantined_at)
            out["quarantineReason"] = self.quarantine_reason
        if self.derived_from:
            out["derivedFrom"] = self.derived_from
            out["method"] = self.method
        return out


@dataclass(frozen=True)
class ActionEntry:
    """An action taken (or, in DryRun, recorded) recently; feeds the cooldown and caps."""

    time: datetime
    action: str  # Rollback | Recalibrate
    slo: str
    revision: str
    dry_run: bool
    record: str

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> ActionEntry:
        return cls(
            time=parse_time(raw["time"]),
            action=raw["action"],
            slo=raw.get("slo", ""),
            revision=raw.get("revision", ""),
            dry_run=bool(raw.get("dryRun", False)),
            record=raw.get("record", ""),
        )

    def write(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "action": self.action,
            "slo": self.slo,
            "revision": self.revision,
            "dryRun": self.dry_run,
            "record": self.record,
        }


@dataclass(frozen=True)
class SloStatus:
    """An SLO's last verdict as written in status, with the engine state to carry on."""

    name: str
    verdict: Verdict
    reason: str
    message: str
    since: datetime
    revision: str
    breaches: int = 0
    worst_group: str = ""
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    held_back: str = ""
    state: Mapping[str, Any] = field(default_factory=dict)
    outcomes_needed: int | None = None

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> SloStatus:
        return cls(
            name=raw["name"],
            verdict=read_verdict(raw.get("verdict")),
            reason=raw.get("reason", ""),
            message=raw.get("message", ""),
            since=parse_time(raw["since"]),
            revision=raw.get("revision", ""),
            breaches=int(raw.get("breaches", 0)),
            worst_group=raw.get("worstGroup", ""),
            estimate=read_number(raw.get("estimate")),
            lower=read_number(raw.get("lower")),
            upper=read_number(raw.get("upper")),
            held_back=raw.get("heldBack", ""),
            state=dict(raw.get("state", {})),
            outcomes_needed=_optional_int(raw.get("outcomesNeeded")),
        )

    def write(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "message": self.message,
            "since": format_time(self.since),
            "revision": self.revision,
            "breaches": self.breaches,
            # A null would delete the key in a merge patch; absent means the same to the engine.
            "state": {key: value for key, value in self.state.items() if value is not None},
        }
        for key, value in (
            ("worstGroup", self.worst_group),
            ("estimate", write_number(self.estimate)),
            ("lower", write_number(self.lower)),
            ("upper", write_number(self.upper)),
            ("heldBack", self.held_back),
        ):
            if value:
                out[key] = value
        if self.outcomes_needed is not None:
            out["outcomesNeeded"] = self.outcomes_needed
        return out


def write_number(value: float | None, decimals: int = 4) -> str:
    """A number as the status writes it (a decimal string); "" for none or a non-finite one."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.{decimals}f}"


def read_number(value: object) -> float | None:
    """A finite number from a status field (decimal strings included), or None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Condition:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition: datetime
    observed_generation: int

    @classmethod
    def read(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(
            type=raw["type"],
            status=raw["status"],
            reason=raw.get("reason", ""),
            message=raw.get("message", ""),
            last_transition=parse_time(raw["lastTransitionTime"]),
            observed_generation=int(raw.get("observedGeneration", 0)),
        )

    def write(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": format_time(self.last_transition),
            "observedGeneration": self.observed_generation,
        }


@dataclass(frozen=True)
class PriorStatus:
    """What the last evaluation left in status."""

    serving: str = ""
    revisions: tuple[RevisionRecord, ...] = ()
    actions: tuple[ActionEntry, ...] = ()
    slos: tuple[SloStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()
    last_action: str = ""
    early_warning: Mapping[str, Any] = field(default_factory=dict)  # early_warning_status

    @classmethod
    def read(cls, raw: Mapping[str, Any] | None) -> PriorStatus:
        raw = raw or {}
        return cls(
            serving=raw.get("servingRevision", ""),
            revisions=tuple(RevisionRecord.read(item) for item in raw.get("revisions", [])),
            actions=tuple(ActionEntry.read(item) for item in raw.get("actions", [])),
            slos=tuple(SloStatus.read(item) for item in raw.get("slos", [])),
            conditions=tuple(Condition.read(item) for item in raw.get("conditions", [])),
            last_action=raw.get("lastAction", ""),
            early_warning=dict(raw.get("earlyWarning") or {}),
        )

    def revision(self, tag: str) -> RevisionRecord | None:
        return next((record for record in self.revisions if record.revision == tag), None)

    def slo(self, name: str) -> SloStatus | None:
        return next((slo for slo in self.slos if slo.name == name), None)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def upsert_revision(
    revisions: tuple[RevisionRecord, ...], record: RevisionRecord
) -> tuple[RevisionRecord, ...]:
    """The history with `record` replacing its namesake, or appended when new."""
    if any(item.revision == record.revision for item in revisions):
        return tuple(record if item.revision == record.revision else item for item in revisions)
    return (*revisions, record)
