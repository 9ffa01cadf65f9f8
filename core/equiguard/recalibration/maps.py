"""Per-group score maps and the calibration a calibrated revision applies.

A `Calibration` is what a calibrated bento carries (as `calibration.json`):
the base bento it wraps, where the score is in its response, the declared
subgroups (to tell a request's group), and one or more layers. A layer maps
the score of each listed group of one dimension (an attribute or an
intersection) and leaves every other group's score as it is. Layers apply in
order, so recalibrating a calibrated revision adds a layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

FORMAT = "equiguard.calibration/v1"
# Scores are clipped this far from 0 and 1 before taking their logit.
_EPSILON = 1e-6


class ScoreMap(Protocol):
    def apply(self, scores: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, object]: ...


def logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, _EPSILON, 1.0 - _EPSILON)
    result: np.ndarray = np.log(clipped) - np.log1p(-clipped)
    return result


@dataclass(frozen=True)
class PlattMap:
    """sigmoid(slope * logit(score) + intercept): strictly increasing when slope > 0."""

    slope: float
    intercept: float

    def apply(self, scores: np.ndarray) -> np.ndarray:
        result: np.ndarray = 1.0 / (1.0 + np.exp(-(self.slope * logit(scores) + self.intercept)))
        return result

    def to_dict(self) -> dict[str, object]:
        return {"kind": "platt", "slope": self.slope, "intercept": self.intercept}


@dataclass(frozen=True)
class IsotonicMap:
    """A non-decreasing step fit, interpolated linearly between its knots, flat outside."""

    knots: tuple[float, ...]  # increasing scores
    values: tuple[float, ...]  # non-decreasing calibrated scores at the knots

    def apply(self, scores: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.interp(scores, self.knots, self.values)
        return result

    def to_dict(self) -> dict[str, object]:
        return {"kind": "isotonic", "knots": list(self.knots), "values": list(self.values)}


@dataclass(frozen=True)
class ThresholdMap:
    """Moves the group's own threshold onto the model's, linearly on each side of it.

    The sidecar and the engine decide `score >= threshold` with one threshold
    for everyone; a group threshold `t_g` is delivered by mapping [0, t_g] onto
    [0, t] and [t_g, 1] onto [t, 1], so that `map(s) >= t` exactly when
    `s >= t_g`. The order of scores within the group is kept.
    """

    group_threshold: float
    threshold: float

    def apply(self, scores: np.ndarray) -> np.ndarray:
        t, tg = self.threshold, self.group_threshold
        below = scores * (t / tg)
        above = t + (scores - tg) * ((1.0 - t) / (1.0 - tg))
        result: np.ndarray = np.clip(np.where(scores >= tg, above, below), 0.0, 1.0)
        return result

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": "groupThreshold",
            "groupThreshold": self.group_threshold,
            "threshold": self.threshold,
        }


def map_from_dict(data: Mapping[str, Any]) -> ScoreMap:
    kind = data.get("kind")
    if kind == "platt":
        return PlattMap(float(data["slope"]), float(data["intercept"]))
    if kind == "isotonic":
        knots = tuple(float(x) for x in data["knots"])
        values = tuple(float(y) for y in data["values"])
        if len(knots) != len(values) or not knots:
            raise ValueError("an isotonic map needs as many values as knots, and at least one")
        return IsotonicMap(knots, values)
    if kind == "groupThreshold":
        group_threshold, threshold = float(data["groupThreshold"]), float(data["threshold"])
        if not (0.0 < group_threshold < 1.0 and 0.0 < threshold < 1.0):
            raise ValueError("a group threshold map needs both thresholds strictly inside (0, 1)")
        return ThresholdMap(group_threshold, threshold)
    raise ValueError(f"unknown score map kind {kind!r}")


@dataclass(frozen=True)
class Layer:
    dimension: str  # an attribute or intersection name
    method: str  # platt | isotonic | groupThreshold
    maps: Mapping[str, ScoreMap]  # group -> map; other groups keep their scores

    def apply(self, scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """`groups` holds each row's group of this layer's dimension."""
        out = np.array(scores, dtype=np.float64, copy=True)
        for group, score_map in self.maps.items():
            rows = groups == group
            if rows.any():
                out[rows] = score_map.apply(out[rows])
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "dimension": self.dimension,
            "method": self.method,
            "maps": {group: m.to_dict() for group, m in self.maps.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layer:
        return cls(
            dimension=str(data["dimension"]),
            method=str(data["method"]),
            maps={str(g): map_from_dict(m) for g, m in dict(data["maps"]).items()},
        )


@dataclass(frozen=True)
class Calibration:
    """What a calibrated revision applies on top of its base bento's score."""

    base_bento: str  # the bento whose service answers first, e.g. readmission:v1
    base_service: str  # its service import string, e.g. service:ReadmissionRisk
    score_path: str  # spec.prediction.scorePath
    subgroups: Mapping[str, Any]  # spec.subgroups as declared (with sources)
    layers: tuple[Layer, ...]

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer.dimension for layer in self.layers))

    def apply(self, scores: np.ndarray, groups: Mapping[str, np.ndarray]) -> np.ndarray:
        """`groups[dimension]` holds each row's group of every layer's dimension."""
        out = np.asarray(scores, dtype=np.float64)
        for layer in self.layers:
            out = layer.apply(out, groups[layer.dimension])
        return out

    def apply_one(self, score: float, groups: Mapping[str, str]) -> float:
        """One request's score, calibrated for its group in every layer's dimension.

        The same numbers as `apply` on a one-row array, without building a row
        mask per group of every layer: a served request pays for its own maps only.
        """
        out = np.array([score], dtype=np.float64)
        for layer in self.layers:
            score_map = layer.maps.get(groups[layer.dimension])
            if score_map is not None:
                out = score_map.apply(out)
        return float(out[0])

    def with_layer(self, layer: Layer) -> Calibration:
        return Calibration(
            self.base_bento, self.base_service, self.score_path, self.subgroups,
            (*self.layers, layer),
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "base": {"bento": self.base_bento, "service": self.base_service},
            "scorePath": self.score_path,
            "subgroups": dict(self.subgroups),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a calibration: format must be {FORMAT}")
        base = dict(data["base"])
        layers: Sequence[Mapping[str, Any]] = data["layers"]
        return cls(
            base_bento=str(base["bento"]),
            base_service=str(base["service"]),
            score_path=str(data["scorePath"]),
            subgroups=dict(data["subgroups"]),
            layers=tuple(Layer.from_dict(layer) for layer in layers),
        )
