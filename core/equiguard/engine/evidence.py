"""What an SLO verdict carries: the verdict, its evidence, and the state between evaluations.

These cross into the operator's status, the sidecar's /v1/slo, the audit and
the recalibration's acceptance, so they live apart from the rules that make
them (`engine.slo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from equiguard.engine.verdict import Verdict


@dataclass(frozen=True)
class Gap:
    """The largest estimated difference between two groups (by the engine's scale)."""

    group: str
    reference: str | None
    estimate: float
    group_value: float
    reference_value: float | None
    n: int
    reference_n: int | None

    def to_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "reference": self.reference,
            "estimate": self.estimate,
            "groupValue": self.group_value,
            "referenceValue": self.reference_value,
            "n": self.n,
            "referenceN": self.reference_n,
        }


@dataclass(frozen=True)
class Evidence:
    metric: str
    attribute: str
    comparison: str
    threshold: float
    group: str | None = None
    reference: str | None = None
    estimate: float | None = None
    interval: tuple[float, float | None] | None = None
    group_value: float | None = None
    reference_value: float | None = None
    n: int | None = None
    reference_n: int | None = None
    confidence: float = 0.0
    insufficient: tuple[str, ...] = ()
    largest: Gap | None = None
    outcomes_needed: int | None = None
    outcome_unit: str = ""
    span_seconds: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "attribute": self.attribute,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "group": self.group,
            "reference": self.reference,
            "estimate": self.estimate,
            "interval": None if self.interval is None else list(self.interval),
            "groupValue": self.group_value,
            "referenceValue": self.reference_value,
            "n": self.n,
            "referenceN": self.reference_n,
            "confidence": self.confidence,
            "insufficient": list(self.insufficient),
            "largestGap": None if self.largest is None else self.largest.to_dict(),
            "outcomesNeeded": self.outcomes_needed,
            "outcomeUnit": self.outcome_unit,
            "spanSeconds": self.span_seconds,
            "suppressed": [],
        }


@dataclass(frozen=True)
class SloState:
    consecutive_breaches: int = 0
    breaching_since: float | None = None
    violated_since: float | None = None
    last_evaluated: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "consecutiveBreaches": self.consecutive_breaches,
            "breachingSince": self.breaching_since,
            "violatedSince": self.violated_since,
            "lastEvaluated": self.last_evaluated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SloState:
        count = data.get("consecutiveBreaches", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError("consecutiveBreaches: must be a non-negative integer")
        return cls(
            count,
            _time(data, "breachingSince"),
            _time(data, "violatedSince"),
            _time(data, "lastEvaluated"),
        )


@dataclass(frozen=True)
class SloVerdict:
    slo: str
    status: Verdict
    reason: str
    message: str
    evidence: Evidence

    def to_dict(self, state: SloState | None = None) -> dict[str, object]:
        entry: dict[str, object] = {
            "verdict": str(self.status),
            "reason": self.reason,
            "message": self.message,
            "evidence": self.evidence.to_dict(),
        }
        if state is not None:
            entry["state"] = state.to_dict()
        return entry


def _time(data: Mapping[str, object], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: must be a number of seconds or null")
    return float(value)
