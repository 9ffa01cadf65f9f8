"""The parts of a ClinicalModel manifest the engine needs, as frozen dataclasses.

The vocabulary is docs/clinicalmodel.md. Defaults equal the CRD's, so a
manifest read from a file (`equiguard audit`) means the same as one read from
the API server. Every error names the field path and how to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from equiguard.engine.comparison import KINDS, Comparison

METRICS: tuple[str, ...] = (
    "selectionRate",
    "tpr",
    "fpr",
    "fnr",
    "tnr",
    "ppv",
    "npv",
    "prevalence",
    "brier",
    "ece",
    "observedExpectedRatio",
    "auroc",
    "netBenefit",
    "calibrationIntercept",
    "calibrationSlope",
)
# Metrics whose values (and so thresholds) are not confined to [0, 1].
UNBOUNDED_METRICS = frozenset({"observedExpectedRatio", "calibrationIntercept", "calibrationSlope"})
COMPARISONS = KINDS
ACTIONS: tuple[str, ...] = ("Alert", "Rollback", "Recalibrate")
# An SLO's optional fields as the CRD defaults them (a test holds the two equal).
SLO_DEFAULTS: Mapping[str, str | int] = {
    "window": "7d",
    "minSamples": 50,
    "confidence": "0.95",
    "consecutiveBreaches": 2,
    "action": "Alert",
}
OVERALL = "overall"
UNKNOWN = "unknown"
# Subgroup cells a model may have (overall, every declared group and each
# dimension's unknown): statistics hold a score histogram for each cell in every
# time bucket of every replica.
MAX_CELLS = 2000

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SLO_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DURATION = re.compile(r"^([1-9][0-9]*)(s|m|h|d)$")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SpecError(ValueError):
    """A manifest field is missing or invalid; `path` names it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return bool(self.edges)

    @property
    def groups(self) -> tuple[str, ...]:
        return self.labels if self.is_numeric else self.values


@dataclass(frozen=True)
class Intersection:
    name: str
    of: tuple[str, ...]
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Subgroups:
    attributes: tuple[Attribute, ...]
    intersections: tuple[Intersection, ...]

    def groups_of(self, dimension: str) -> tuple[str, ...]:
        """Declared groups of an attribute or intersection (KeyError if undeclared)."""
        items: list[Attribute | Intersection] = [*self.attributes, *self.intersections]
        for item in items:
            if item.name == dimension:
                return item.groups
        raise KeyError(dimension)


@dataclass(frozen=True)
class Slo:
    name: str
    metric: str
    attribute: str
    comparison: str
    reference: str | None
    threshold: float
    window_seconds: float
    min_samples: int
    confidence: float
    consecutive_breaches: int
    action: str

    @property
    def compared(self) -> Comparison:
        return Comparison(self.comparison, self.threshold, self.reference)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    threshold: float
    subgroups: Subgroups
    slos: tuple[Slo, ...]


def parse_duration(text: str) -> float:
    """`"30m"` -> 1800.0 seconds; ValueError for anything else."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 1h or 7d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_model(manifest: Mapping[str, object]) -> ModelSpec:
    """Read a ClinicalModel manifest (apiVersion equiguard.io/v1alpha1)."""
    if manifest.get("apiVersion") != "equiguard.io/v1alpha1":
        raise SpecError("apiVersion", "must be equiguard.io/v1alpha1")
    if manifest.get("kind") != "ClinicalModel":
        raise SpecError("kind", "must be ClinicalModel")
    metadata = _mapping(manifest.get("metadata", {}), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError("metadata.name", "the model needs a name")
    spec = _mapping(manifest.get("spec"), "spec")
    prediction = _mapping(spec.get("prediction"), "spec.prediction")
    threshold = _decimal(prediction.get("threshold"), "spec.prediction.threshold")
    if not 0.0 <= threshold <= 1.0:
        raise SpecError("spec.prediction.threshold", 'must lie in [0, 1], such as "0.30"')
    subgroups = parse_subgroups(spec.get("subgroups"), "spec.subgroups")
    slo_items = _sequence(spec.get("slos", []), "spec.slos")
    slos = tuple(parse_slo(item, f"spec.slos[{i}]") for i, item in enumerate(slo_items))
    seen: set[str] = set()
    for i, slo in enumerate(slos):
        if slo.name in seen:
            raise SpecError(f"spec.slos[{i}].name", f"{slo.name!r} is used by two SLOs")
        seen.add(slo.name)
        _check_slo_against_subgroups(slo, subgroups, f"spec.slos[{i}]")
    return ModelSpec(name=name, threshold=threshold, subgroups=subgroups, slos=slos)


def parse_subgroups(value: object, path: str = "spec.subgroups") -> Subgroups:
    body = _mapping(value, path)
    attributes: list[Attribute] = []
    names: set[str] = set()
    for i, item in enumerate(_sequence(body.get("attributes", []), f"{path}.attributes")):
        attribute = _parse_attribute(item, f"{path}.attributes[{i}]")
        if attribute.name in names:
            raise SpecError(f"{path}.attributes[{i}].name", f"{attribute.name!r} is declared twice")
        names.add(attribute.name)
        attributes.append(attribute)
    by_name = {a.name: a for a in attributes}
    intersections: list[Intersection] = []
    for i, item in enumerate(_sequence(body.get("intersections", []), f"{path}.intersections")):
        item_path = f"{path}.intersections[{i}]"
        raw = _mapping(item, item_path)
        name = _name(raw.get("name"), f"{item_path}.name")
        if name in names:
            raise SpecError(
                f"{item_path}.name", f"{name!r} is already an attribute or intersection"
            )
        of = tuple(str(x) for x in _sequence(raw.get("of"), f"{item_path}.of"))
        if len(of) < 2 or len(set(of)) != len(of):
            raise SpecError(f"{item_path}.of", "must list two or more different attributes")
        for j, part in enumerate(of):
            if part not in by_name:
                raise SpecError(f"{item_path}.of[{j}]", f"{part!r} is not a declared attribute")
        size = math.prod(len(by_name[part].groups) for part in of)
        if size > MAX_CELLS:
            raise SpecError(
                item_path,
                f"makes {size} groups; a model may have at most {MAX_CELLS} subgroup cells "
                "(intersect fewer attributes, or attributes with fewer groups)",
            )
        groups: list[str] = [""]
        for part in of:
            groups = [f"{g}/{h}" if g else h for g in groups for h in by_name[part].groups]
        names.add(name)
        intersections.append(Intersection(name=name, of=of, groups=tuple(groups)))
    # Every cell costs memory in every statistics bucket of every replica.
    dimensions: list[Attribute | Intersection] = [*attributes, *intersections]
    cells = 1 + sum(len(item.groups) + 1 for item in dimensions)
    if cells > MAX_CELLS:
        raise SpecError(
            path,
            f"makes {cells} subgroup cells (with overall and each unknown); "
            f"a model may have at most {MAX_CELLS}",
        )
    return Subgroups(attributes=tuple(attributes), intersections=tuple(intersections))


def parse_slo(value: object, path: str) -> Slo:
    raw = _mapping(value, path)
    name = raw.get("name")
    if not isinstance(name, str) or not _SLO_NAME.match(name):
        raise SpecError(f"{path}.name", "must be a DNS label such as tpr-gap-race")
    metric = raw.get("metric")
    if metric not in METRICS:
        raise SpecError(
            f"{path}.metric", f"{metric!r} is not a metric; use one of {', '.join(METRICS)}"
        )
    attribute = raw.get("attribute")
    if not isinstance(attribute, str) or not attribute:
        raise SpecError(f"{path}.attribute", "must name a declared attribute or intersection")
    comparison = raw.get("comparison")
    if comparison not in COMPARISONS:
        raise SpecError(
            f"{path}.comparison", f"{comparison!r} is not one of {', '.join(COMPARISONS)}"
        )
    assert isinstance(metric, str) and isinstance(comparison, str)
    reference = raw.get("reference")
    if comparison in ("gapToReference", "ratioToReference"):
        if not isinstance(reference, str) or not reference:
            raise SpecError(
                f"{path}.reference", f"{comparison} needs a reference: overall, best or a group"
            )
    elif reference is not None:
        raise SpecError(f"{path}.reference", "is used only with gapToReference or ratioToReference")
    if reference == "best" and metric in ("calibrationIntercept", "calibrationSlope"):
        raise SpecError(
            f"{path}.reference",
            f"{metric} has no best group (its ideal is a value, not a direction); "
            "use overall or a group",
        )
    threshold = _decimal(raw.get("threshold"), f"{path}.threshold")
    if comparison == "ratioToReference" and not 0.0 < threshold <= 1.0:
        raise SpecError(
            f"{path}.threshold", 'a ratioToReference threshold must be in (0, 1], such as "0.80"'
        )
    if metric not in UNBOUNDED_METRICS and comparison != "ratioToReference" and threshold > 1.0:
        raise SpecError(f"{path}.threshold", "must be at most 1 for this metric")
    window_text = raw.get("window", SLO_DEFAULTS["window"])
    try:
        window = parse_duration(str(window_text))
    except ValueError as error:
        raise SpecError(f"{path}.window", str(error)) from None
    min_samples = raw.get("minSamples", SLO_DEFAULTS["minSamples"])
    if not isinstance(min_samples, int) or isinstance(min_samples, bool) or min_samples < 11:
        raise SpecError(f"{path}.minSamples", "must be a whole number of at least 11")
    confidence = _decimal(raw.get("confidence", SLO_DEFAULTS["confidence"]), f"{path}.confidence")
    if not 0.5 <= confidence < 1.0:
        raise SpecError(f"{path}.confidence", 'must be in [0.50, 1), such as "0.95"')
    consecutive = raw.get("consecutiveBreaches", SLO_DEFAULTS["consecutiveBreaches"])
    if not isinstance(consecutive, int) or isinstance(consecutive, bool) or consecutive < 1:
        raise SpecError(f"{path}.consecutiveBreaches", "must be a whole number of at least 1")
    action = raw.get("action", SLO_DEFAULTS["action"])
    if action not in ACTIONS:
        raise SpecError(f"{path}.action", f"{action!r} is not one of {', '.join(ACTIONS)}")
    assert isinstance(action, str)
    return Slo(
        name=name,
        metric=metric,
        attribute=attribute,
        comparison=comparison,
        reference=reference if isinstance(reference, str) else None,
        threshold=threshold,
        window_seconds=window,
        min_samples=min_samples,
        confidence=confidence,
        consecutive_breaches=consecutive,
        action=action,
    )


def _parse_attribute(value: object, path: str) -> Attribute:
    raw = _mapping(value, path)
    name = _name(raw.get("name"), f"{path}.name")
    has_values, has_bins = "values" in raw, "bins" in raw
    if has_values == has_bins:
        raise SpecError(path, "needs exactly one of values (categorical) or bins (numeric)")
    if has_values:
        values = tuple(
            _group_name(v, f"{path}.values[{i}]")
            for i, v in enumerate(_sequence(raw["values"], f"{path}.values"))
        )
        if not values:
            raise SpecError(f"{path}.values", "must list at least one group")
        if len(set(values)) != len(values):
            raise SpecError(f"{path}.values", "lists a group twice")
        return Attribute(name=name, values=values)
    bins = _mapping(raw["bins"], f"{path}.bins")
    edge_items = _sequence(bins.get("edges"), f"{path}.bins.edges")
    edges = tuple(
        _decimal(e, f"{path}.bins.edges[{i}]", signed=True) for i, e in enumerate(edge_items)
    )
    if not edges or any(b <= a for a, b in pairwise(edges)):
        raise SpecError(
            f"{path}.bins.edges", 'must be strictly ascending numbers, such as ["18", "45"]'
        )
    if "labels" in bins:
        label_items = _sequence(bins["labels"], f"{path}.bins.labels")
        labels = tuple(
            _group_name(v, f"{path}.bins.labels[{i}]") for i, v in enumerate(label_items)
        )
        if len(labels) != len(edges):
            raise SpecError(f"{path}.bins.labels", "needs one label per edge (one per band)")
        if len(set(labels)) != len(labels):
            raise SpecError(f"{path}.bins.labels", "lists a label twice")
    else:
        texts = [str(e) for e in edge_items]
        labels = (*(f"{lo}-{hi}" for lo, hi in pairwise(texts)), f"{texts[-1]}+")
    return Attribute(name=name, edges=edges, labels=labels)


def _check_slo_against_subgroups(slo: Slo, subgroups: Subgroups, path: str) -> None:
    try:
        groups = subgroups.groups_of(slo.attribute)
    except KeyError:
        raise SpecError(
            f"{path}.attribute", f"{slo.attribute!r} is not a declared attribute or intersection"
        ) from None
    if slo.reference not in (None, OVERALL, "best") and slo.reference not in groups:
        raise SpecError(
            f"{path}.reference",
            f"{slo.reference!r} is not overall, best or a group of {slo.attribute}",
        )


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise SpecError(path, "must be a mapping")
    return value


def _sequence(value: object, path: str) -> Sequence[object]:
    if not isinstance(value, list | tuple):
        raise SpecError(path, "must be a list")
    return value


def _name(value: object, path: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(path, "must match [a-z][a-z0-9_]*, such as age_band")
    if value == OVERALL:
        raise SpecError(path, "overall names the whole population; choose another name")
    return value


def _group_name(value: object, path: str) -> str:
    text = str(value)
    if not text or "/" in text:
        raise SpecError(path, "a group name must be non-empty and contain no /")
    if text == UNKNOWN:
        raise SpecError(path, "unknown is the group of undeclared values; choose another name")
    return text


def _decimal(value: object, path: str, *, signed: bool = False) -> float:
    # The CRD writes non-integers as strings; whole numbers may arrive as ints.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(path, 'must be a number written as a string, such as "0.10"')
    try:
        number = float(value)
    except ValueError:
        raise SpecError(path, f'{value!r} is not a number; write it like "0.10"') from None
    if not math.isfinite(number) or (number < 0 and not signed):
        raise SpecError(path, f"{value!r} must be a finite, non-negative number")
    return number
