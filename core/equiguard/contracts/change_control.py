"""`spec.changeControl`: what a recalibration may change and what it must show.

Defaults equal the CRD's (crds/clinicalmodel.yaml), so a manifest read from a
file means the same as one read from the API server. Errors are the engine's
`SpecError`, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from equiguard.engine.spec import SpecError, parse_duration

METHODS: tuple[str, ...] = ("platt", "isotonic", "groupThreshold")
_PATH = "spec.changeControl"
# The optional fields as the CRD defaults them (a test holds the two equal).
DEFAULTS: Mapping[str, str | int | bool] = {
    "window": "30d",
    "holdoutFraction": "0.30",
    "minOutcomesPerGroup": 200,
    "approvalRequired": True,
}
ACCEPTANCE_DEFAULTS: Mapping[str, str | bool] = {
    "allSLOsMet": True,
    "maxAurocDecrease": "0.02",
    "maxBrierIncrease": "0.01",
    "maxCalibrationError": "0.05",
}
PACING_DEFAULTS: Mapping[str, str | int] = {"count": 1, "period": "7d"}


@dataclass(frozen=True)
class Acceptance:
    all_slos_met: bool = True
    max_auroc_decrease: float = 0.02
    max_brier_increase: float = 0.01
    max_calibration_error: float = 0.05


@dataclass(frozen=True)
class Envelope:
    methods: tuple[str, ...]  # in the order tried: platt, isotonic, groupThreshold
    window_seconds: float = 30 * 86400.0
    holdout_fraction: float = 0.30
    min_outcomes_per_group: int = 200
    acceptance: Acceptance = Acceptance()
    approval_required: bool = True
    max_recalibrations: int = 1
    recalibration_period_seconds: float = 7 * 86400.0

    def to_dict(self) -> dict[str, object]:
        """The envelope as declared in the CRD's vocabulary (numbers as numbers)."""
        return {
            "methods": list(self.methods),
            "windowSeconds": self.window_seconds,
            "holdoutFraction": self.holdout_fraction,
            "minOutcomesPerGroup": self.min_outcomes_per_group,
            "acceptance": {
                "allSLOsMet": self.acceptance.all_slos_met,
                "maxAurocDecrease": self.acceptance.max_auroc_decrease,
                "maxBrierIncrease": self.acceptance.max_brier_increase,
                "maxCalibrationError": self.acceptance.max_calibration_error,
            },
            "approvalRequired": self.approval_required,
            "maxRecalibrations": {
                "count": self.max_recalibrations,
                "periodSeconds": self.recalibration_period_seconds,
            },
        }


@dataclass(frozen=True)
class Declared:
    """The envelope as the user wrote it, for people to read: numbers and durations as
    written, defaults filled in, and only the acceptance criteria actually declared."""

    methods: tuple[str, ...]  # in the order declared
    window: str
    min_outcomes_per_group: int
    approval_required: bool
    max_recalibrations: int
    recalibration_period: str
    acceptance: tuple[tuple[str, str], ...]  # (criterion, value as written), by name


def read_declared(spec: Mapping[str, object]) -> Declared | None:
    """`changeControl` as written, or None when the model declares none."""
    control = spec.get("changeControl")
    if not isinstance(control, Mapping) or not control:
        return None
    acceptance, limit = _section(control, "acceptance"), _section(control, "maxRecalibrations")
    methods = control.get("methods")
    return Declared(
        methods=tuple(str(m) for m in methods) if isinstance(methods, list) else (),
        window=str(control.get("window", DEFAULTS["window"])),
        min_outcomes_per_group=_whole(
            control.get("minOutcomesPerGroup", DEFAULTS["minOutcomesPerGroup"])
        ),
        approval_required=bool(control.get("approvalRequired", DEFAULTS["approvalRequired"])),
        max_recalibrations=_whole(limit.get("count", PACING_DEFAULTS["count"])),
        recalibration_period=str(limit.get("period", PACING_DEFAULTS["period"])),
        acceptance=tuple((str(k), str(v)) for k, v in sorted(acceptance.items())),
    )


def _section(control: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = control.get(key)
    return value if isinstance(value, Mapping) else {}


def _whole(value: object) -> int:
    return value if isinstance(value, int) else int(str(value))


def parse_envelope(spec: Mapping[str, object]) -> Envelope:
    """Read `changeControl` from a ClinicalModel's spec; SpecError if absent or invalid."""
    if "changeControl" not in spec:
        raise SpecError(
            _PATH, "is required for a recalibration: declare the methods and criteria allowed"
        )
    control = _mapping(spec["changeControl"], _PATH)
    methods = control.get("methods")
    if not isinstance(methods, list) or not methods:
        raise SpecError(f"{_PATH}.methods", f"must list one or more of {', '.join(METHODS)}")
    for i, method in enumerate(methods):
        if method not in METHODS:
            raise SpecError(
                f"{_PATH}.methods[{i}]", f"{method!r} is not one of {', '.join(METHODS)}"
            )
    holdout = _decimal(control, "holdoutFraction")
    if not 0.1 <= holdout <= 0.9:
        raise SpecError(f"{_PATH}.holdoutFraction", 'must be between "0.10" and "0.90"')
    minimum = control.get("minOutcomesPerGroup", DEFAULTS["minOutcomesPerGroup"])
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 11:
        raise SpecError(
            f"{_PATH}.minOutcomesPerGroup",
            "must be a whole number of at least 11 (smaller groups could identify patients)",
        )
    acceptance = _mapping(control.get("acceptance", {}), f"{_PATH}.acceptance")
    all_met = acceptance.get("allSLOsMet", ACCEPTANCE_DEFAULTS["allSLOsMet"])
    if not isinstance(all_met, bool):
        raise SpecError(f"{_PATH}.acceptance.allSLOsMet", "must be true or false")
    approval = control.get("approvalRequired", DEFAULTS["approvalRequired"])
    if not isinstance(approval, bool):
        raise SpecError(f"{_PATH}.approvalRequired", "must be true or false")
    pacing = _mapping(control.get("maxRecalibrations", {}), f"{_PATH}.maxRecalibrations")
    count = pacing.get("count", PACING_DEFAULTS["count"])
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SpecError(f"{_PATH}.maxRecalibrations.count", "must be a whole number, 0 or more")
    return Envelope(
        methods=tuple(m for m in METHODS if m in methods),
        window_seconds=_duration(control, "window", DEFAULTS, _PATH),
        holdout_fraction=holdout,
        min_outcomes_per_group=minimum,
        acceptance=Acceptance(
            all_slos_met=all_met,
            max_auroc_decrease=_decimal(acceptance, "maxAurocDecrease", "acceptance."),
            max_brier_increase=_decimal(acceptance, "maxBrierIncrease", "acceptance."),
            max_calibration_error=_decimal(acceptance, "maxCalibrationError", "acceptance."),
        ),
        approval_required=approval,
        max_recalibrations=count,
        recalibration_period_seconds=_duration(
            pacing, "period", PACING_DEFAULTS, f"{_PATH}.maxRecalibrations"
        ),
    )


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise SpecError(path, "must be a mapping")
    return value


def _decimal(section: Mapping[str, object], key: str, prefix: str = "") -> float:
    path = f"{_PATH}.{prefix}{key}"
    defaults = ACCEPTANCE_DEFAULTS if prefix else DEFAULTS
    value = section.get(key, defaults[key])
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SpecError(path, 'must be a number written as a string, such as "0.05"')
    try:
        number = float(value)
    except ValueError:
        raise SpecError(path, f'{value!r} is not a number; write it like "0.05"') from None
    if not 0.0 <= number <= 1.0:
        raise SpecError(path, f"{value!r} must lie in [0, 1]")
    return number


def _duration(
    section: Mapping[str, object], key: str, defaults: Mapping[str, object], path: str
) -> float:
    value = section.get(key, defaults[key])
    try:
        return parse_duration(str(value))
    except ValueError as error:
        raise SpecError(f"{path}.{key}", str(error)) from None
