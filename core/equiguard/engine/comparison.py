"""How an SLO compares a metric with its threshold, in one place.

Four kinds: `maxGap` (between any two groups), `gapToReference` and
`ratioToReference` (each group against a reference: overall, the best group
or a named one) and `floor` (each group's own value). The engine judges
ratios on the log scale, so 0.5 and 2 lie equally far from 1; everything
that ranks or draws comparisons (the operator's worst gap, the report's
charts, the recalibration's targets) uses the same scale through this object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("maxGap", "gapToReference", "ratioToReference", "floor")
OVERALL = "overall"


@dataclass(frozen=True)
class Comparison:
    kind: str
    threshold: float
    reference: str | None = None

    @property
    def is_ratio(self) -> bool:
        return self.kind == "ratioToReference"

    @property
    def is_floor(self) -> bool:
        return self.kind == "floor"

    @property
    def is_gap(self) -> bool:
        return self.kind in ("maxGap", "gapToReference")

    def scale(self, value: float) -> float:
        """The engine's scale for comparing with the threshold: logs for ratios."""
        if not self.is_ratio:
            return value
        if value <= 0:
            return -math.inf
        return math.inf if math.isinf(value) else math.log(value)

    def band(self) -> tuple[float, float]:
        """The values (on the engine's scale) an estimate may take while the SLO holds."""
        if self.is_floor:
            return self.threshold, math.inf
        if self.is_ratio:
            return math.log(self.threshold), -math.log(self.threshold)
        return -self.threshold, self.threshold

    def within(self, lower: float, upper: float) -> bool:
        """Whether an interval on the engine's scale lies inside the band."""
        low, high = self.band()
        return low <= lower and upper <= high

    def past(self, lower: float, upper: float) -> bool:
        """Whether an interval on the engine's scale lies wholly outside the band."""
        low, high = self.band()
        return upper < low or lower > high

    def distance_past(self, estimate: float) -> float:
        """How far a point estimate is past (> 0) or within (< 0) the threshold, on
        the engine's scale; a ratio of zero or less has no log and ranks last."""
        if self.is_floor:
            return self.threshold - estimate
        if self.is_ratio:
            if estimate <= 0:
                return -math.inf
            return abs(math.log(estimate)) + math.log(self.threshold)
        return abs(estimate) - self.threshold

    def interval_past(self, lower: float, upper: float) -> float:
        """How far an interval lies past the threshold, on the engine's scale (> 0:
        wholly past, a confident breach)."""
        t = self.threshold
        if self.is_floor:
            return t - upper
        if self.is_ratio:
            log_t = math.log(t)
            low = -math.inf if lower <= 0 else math.log(lower)
            high = math.inf if upper == math.inf else math.log(upper) if upper > 0 else -math.inf
            return max(log_t - high, low + log_t)
        return max(lower - t, -t - upper)

    def interval_reach(self, lower: float, upper: float) -> float:
        """How close an interval comes to the threshold from inside (0 = touching)."""
        low, high = self.scale(lower), self.scale(upper)
        t = self.threshold
        if self.is_floor:
            return t - low
        if self.is_ratio:
            return max(math.log(t) - low, high + math.log(t))
        return max(high - t, -t - low)

    def threshold_lines(self) -> tuple[float, ...]:
        """The values a chart of estimates marks: the threshold, and 1/threshold for ratios."""
        if self.is_ratio and self.threshold > 0:
            return (self.threshold, 1 / self.threshold)
        return (self.threshold,)

    def quantity(self, metric: str, attribute: str) -> str:
        """What an estimate measures, in words, given the metric's name."""
        if self.kind == "maxGap":
            return f"largest {metric} gap between {attribute} groups"
        if self.kind == "gapToReference":
            return f"largest {metric} gap to {self.reference or OVERALL}"
        if self.is_ratio:
            return f"{metric} relative to {self.reference or OVERALL}"
        return f"lowest {metric} among {attribute} groups"

    def axis(self, metric: str) -> str:
        """A chart axis's short label, given the metric's short name."""
        if self.is_gap:
            return f"{metric} gap"
        if self.is_ratio:
            return f"{metric} ratio"
        return f"lowest {metric}"
