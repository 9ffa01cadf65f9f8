"""The recalibration decision: fit each allowed method, judge it, keep the first that passes.

Pure: the gathered outcomes, the spec, the envelope and the clock go in; the
decision (publish a calibration or not, why, and every number it rests on)
comes out. Methods are tried from the least flexible (platt, isotonic, then
group thresholds); the first candidate meeting every criterion is the one to
publish and the rest are not tried.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from equiguard.contracts.change_control import Envelope
from equiguard.engine.metrics import MetricTable, compute_metrics
from equiguard.engine.slo import SloVerdict
from equiguard.engine.spec import ModelSpec, Slo
from equiguard.engine.subgroups import CellLayout
from equiguard.recalibration.assess import (
    CONFIDENCE,
    Assessment,
    assess,
    measure,
    serving_on_holdout,
)
from equiguard.recalibration.cells import cell_rows, dimension_groups
from equiguard.recalibration.fit import Fit, FitInput, fit_layer
from equiguard.recalibration.maps import Layer
from equiguard.recalibration.outcomes import Outcomes, split_by_time

PUBLISH, REFUSE = "Published", "Refused"
# When no candidate could even be fitted, the most telling reason wins.
_FIT_REASONS = ("InsufficientOutcomes", "NoGroupToChange", "MethodNotApplicable")


@dataclass(frozen=True)
class Inputs:
    spec: ModelSpec
    envelope: Envelope
    slo: Slo | None  # the SLO whose violation started the recalibration
    dimension: str  # the attribute or intersection recalibrated (the SLO's, by default)
    methods: tuple[str, ...]  # allowed by the envelope, in the order to try
    outcomes: Outcomes  # the window's labelled predictions of the serving revision
    now: float


@dataclass(frozen=True)
class Candidate:
    fit: Fit
    assessment: Assessment | None  # None when nothing was fitted


@dataclass(frozen=True)
class Decision:
    outcome: str  # Published | Refused
    reason: str  # CriteriaMet | CriteriaNotMet | InsufficientOutcomes | NoGroupToChange | ...
    message: str
    fit_outcomes: int
    holdout_outcomes: int
    split_time: float | None  # the prediction time where the holdout begins
    serving: MetricTable | None  # the serving revision on the held-out outcomes
    serving_verdicts: dict[str, SloVerdict]
    candidates: tuple[Candidate, ...]

    @property
    def chosen(self) -> Candidate | None:
        if self.outcome != PUBLISH:
            return None
        return self.candidates[-1]

    @property
    def layer(self) -> Layer | None:
        chosen = self.chosen
        return None if chosen is None else chosen.fit.layer


def decide(inputs: Inputs) -> Decision:
    spec, envelope = inputs.spec, inputs.envelope
    fit_part, holdout = split_by_time(inputs.outcomes, envelope.holdout_fraction)
    if len(fit_part) == 0 or len(holdout) == 0:
        return Decision(
            REFUSE, "InsufficientOutcomes",
            "the window holds too few labelled outcomes of the serving revision to fit and judge",
            len(fit_part), len(holdout), None, None, {}, (),
        )  # fmt: skip
    layout = CellLayout.from_spec(spec.subgroups)
    fit_rows = cell_rows(layout, fit_part.groups, len(fit_part))
    held_rows = cell_rows(layout, holdout.groups, len(holdout))
    held_groups = dimension_groups(layout, held_rows, inputs.dimension)
    serving = serving_on_holdout(
        spec, layout, held_rows, holdout.scores, holdout.labels, inputs.now
    )
    data = FitInput(
        dimension=inputs.dimension,
        declared=spec.subgroups.groups_of(inputs.dimension),
        scores=fit_part.scores,
        labels=fit_part.labels,
        groups=dimension_groups(layout, fit_rows, inputs.dimension),
        holdout_counts=_counts(held_groups),
        table=compute_metrics(
            measure(spec, layout, fit_rows, fit_part.scores, fit_part.labels), CONFIDENCE
        ),
        threshold=spec.threshold,
    )
    candidates: list[Candidate] = []
    for method in inputs.methods:
        fit = fit_layer(method, data, envelope, inputs.slo)
        if fit.layer is None:
            candidates.append(Candidate(fit, None))
            continue
        scores = fit.layer.apply(holdout.scores, held_groups)
        assessment = assess(
            spec, envelope, layout, held_rows, holdout.labels, serving, scores, inputs.now
        )
        candidates.append(Candidate(fit, assessment))
        if assessment.held:
            return Decision(
                PUBLISH, "CriteriaMet",
                f"{fit.message}; every acceptance criterion holds on {len(holdout)} "
                "held-out outcomes",
                len(fit_part), len(holdout), float(holdout.times[0]), serving[0], serving[1],
                tuple(candidates),
            )  # fmt: skip
    reason, message = _refusal(candidates)
    return Decision(
        REFUSE, reason, message, len(fit_part), len(holdout), float(holdout.times[0]),
        serving[0], serving[1], tuple(candidates),
    )  # fmt: skip


def _refusal(candidates: list[Candidate]) -> tuple[str, str]:
    assessed = [c for c in candidates if c.assessment is not None]
    if assessed:
        parts = []
        for candidate in assessed:
            assert candidate.assessment is not None
            failed = "; ".join(f"{c.name}: {c.message}" for c in candidate.assessment.failed)
            parts.append(f"{candidate.fit.method} fails {failed}")
        return "CriteriaNotMet", " | ".join(parts)
    for reason in _FIT_REASONS:
        matching = [c.fit for c in candidates if c.fit.reason == reason]
        if matching:
            return reason, "; ".join(f"{fit.method}: {fit.message}" for fit in matching)
    return "NoMethodAllowed", "no recalibration method is allowed"


def _counts(groups: np.ndarray) -> dict[str, int]:
    names, counts = np.unique(groups.astype(str), return_counts=True)
    return {str(name): int(count) for name, count in zip(names, counts, strict=True)}
