"""The synthetic cohort itself: demographics, clinical features, the true risk and the plants.

Every row is one index admission. Demographics are drawn first, then
comorbidity and utilisation features that depend on them, then the true
readmission risk from a fixed logistic model of the clinical features only
(``true_logit``). The plants, and why each is there, are told in equiguard.cohort.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

RACES = ("White", "Black", "Asian", "Hispanic", "Other")
SEXES = ("female", "male")
LANGUAGES = ("English", "Spanish", "Other")
ADI_QUINTILES = ("1", "2", "3", "4", "5")

# Shares of adult inpatients in a large US urban health system (illustrative).
DEFAULT_RACE_MIX: Mapping[str, float] = {
    "White": 0.58,
    "Black": 0.20,
    "Asian": 0.07,
    "Hispanic": 0.11,
    "Other": 0.04,
}
# P(area deprivation index quintile | race); residential segregation makes
# deprivation unequal, which is why ADI is an equity attribute at all.
ADI_BY_RACE: Mapping[str, tuple[float, ...]] = {
    "White": (0.24, 0.23, 0.21, 0.18, 0.14),
    "Black": (0.08, 0.12, 0.18, 0.27, 0.35),
    "Asian": (0.27, 0.25, 0.20, 0.16, 0.12),
    "Hispanic": (0.10, 0.15, 0.21, 0.25, 0.29),
    "Other": (0.16, 0.18, 0.22, 0.23, 0.21),
}
# P(preferred language | race), languages in LANGUAGES order.
LANGUAGE_BY_RACE: Mapping[str, tuple[float, ...]] = {
    "White": (0.97, 0.01, 0.02),
    "Black": (0.96, 0.01, 0.03),
    "Asian": (0.68, 0.01, 0.31),
    "Hispanic": (0.52, 0.45, 0.03),
    "Other": (0.85, 0.05, 0.10),
}

# The fields a prediction request carries as its JSON body: what the model may
# use. Demographics other than age are deliberately absent.
FEATURES = (
    "age",
    "charlson_index",
    "prior_admissions_12m",
    "ed_visits_6m",
    "length_of_stay_days",
    "medication_count",
    "prior_cost_12m",
)
DEMOGRAPHICS = ("race", "sex", "payer", "language", "adi_quintile")

# The true model: logit P(readmitted within 30 days) =
#   INTERCEPT + sum(coefficient * term), over the terms below. Cost is absent:
# spending is a consequence of need, not a cause of readmission.
TRUE_INTERCEPT = -3.3
TRUE_COEFFICIENTS: Mapping[str, float] = {
    "age_decades_over_65": 0.10,  # (age - 65) / 10
    "charlson_index": 0.35,
    "prior_admissions_12m": 0.80,
    "ed_visits_6m": 0.30,
    "log_length_of_stay_days": 0.50,  # natural log
    "medication_count_over_6": 0.04,  # medication_count - 6
}


@dataclass(frozen=True)
class CostUnderRecording:
    """Claims cost of ``group`` is ``factor`` times what its need would produce."""

    attribute: str
    group: str
    factor: float


@dataclass(frozen=True)
class MissedReadmissions:
    """A share ``rate`` of ``group``'s true readmissions is recorded as ``label`` 0."""

    attribute: str
    group: str
    rate: float


@dataclass(frozen=True)
class ScoreShift:
    """``reference_score`` of ``group`` is the true risk shifted by ``logit`` on the logit scale."""

    attribute: str
    group: str
    logit: float


Plant = CostUnderRecording | MissedReadmissions | ScoreShift

# Exaggerated beyond what claims studies report, so that a model relying on
# cost misses Black patients' readmissions clearly (TPR about 0.35 lower at
# threshold 0.30) in a few hundred outcomes.
DEFAULT_PLANTS: tuple[Plant, ...] = (CostUnderRecording("race", "Black", 0.25),)


@dataclass(frozen=True)
class Cohort:
    """Columns of equal length: FEATURES, DEMOGRAPHICS, and the outcome columns.

    ``risk`` is the true probability, ``readmitted`` the true outcome, ``label``
    the recorded outcome (differs only under MissedReadmissions) and
    ``reference_score`` the true risk after any ScoreShift.
    """

    columns: Mapping[str, npt.NDArray[Any]]

    def __len__(self) -> int:
        return len(self.columns["age"])

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.columns[name]

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Cohort:
        """The rows selected by a boolean mask or an index array."""
        return Cohort({name: column[rows] for name, column in self.columns.items()})

    def feature_matrix(self, names: Sequence[str] = FEATURES) -> npt.NDArray[np.float64]:
        """Features as a float matrix, one column per name in ``names``."""
        return np.column_stack([self.columns[name].astype(np.float64) for name in names])

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows as dicts of plain Python values (JSON-ready)."""
        names = list(self.columns)
        for values in zip(*(self.columns[name].tolist() for name in names), strict=True):
            yield dict(zip(names, values, strict=True))


def generate_cohort(
    n: int,
    seed: int,
    *,
    race_mix: Mapping[str, float] = DEFAULT_RACE_MIX,
    plants: Sequence[Plant] = DEFAULT_PLANTS,
) -> Cohort:
    """Draw ``n`` index admissions; the same arguments always give the same cohort."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    columns: dict[str, npt.NDArray[Any]] = {}

    race = _choice(rng, RACES, _probabilities(race_mix, RACES, "race_mix"), n)
    sex = _choice(rng, SEXES, (0.52, 0.48), n)
    # Adult inpatients skew old: a normal body truncated to 18..100.
    age = np.clip(np.rint(rng.normal(62.0, 18.0, n)), 18, 100).astype(np.int64)
    adi = _conditional_choice(rng, race, ADI_BY_RACE, n)
    language = _conditional_choice(rng, race, LANGUAGE_BY_RACE, n, LANGUAGES)
    payer = _payer(rng, age, adi)
    columns.update(race=race, sex=sex, payer=payer, language=language, adi_quintile=adi)

    adi_centered = adi.astype(np.int64) - 3
    age_decades = (age - 65) / 10.0
    charlson = np.minimum(
        rng.poisson(np.exp(0.65 + 0.25 * age_decades + 0.03 * adi_centered)), 15
    ).astype(np.int64)
    # Frailty beyond what the Charlson index codes: it makes utilisation
    # over-dispersed and correlated, as in real claims.
    frailty = rng.gamma(2.0, 0.5, n)
    prior_admissions = rng.poisson(frailty * np.exp(-1.0 + 0.18 * charlson + 0.02 * adi_centered))
    ed_visits = rng.poisson(
        frailty
        * np.exp(-0.5 + 0.08 * charlson + 0.04 * adi_centered + 0.20 * (payer == "Medicaid"))
    )
    length_of_stay = np.maximum(
        1, np.rint(rng.lognormal(1.15 + 0.07 * charlson + 0.03 * age_decades, 0.55))
    ).astype(np.int64)
    medications = rng.poisson(np.exp(1.65 + 0.07 * charlson + 0.05 * age_decades))
    # Spending follows need: an admission costs most, then ED visits and
    # chronic disease management.
    need_cost = (
        14_000.0 * prior_admissions + 1_100.0 * ed_visits + 1_600.0 * charlson + 400.0
    ) * rng.lognormal(0.0, 0.35, n)
    columns.update(
        age=age,
        charlson_index=charlson,
        prior_admissions_12m=prior_admissions.astype(np.int64),
        ed_visits_6m=ed_visits.astype(np.int64),
        length_of_stay_days=length_of_stay,
        medication_count=medications.astype(np.int64),
    )
    cost_factor = np.ones(n)
    for plant in plants:
        if isinstance(plant, CostUnderRecording):
            cost_factor[_members(columns, plant)] *= plant.factor
    columns["prior_cost_12m"] = np.round(need_cost * cost_factor, 2)

    logit = true_logit(columns)
    risk = _sigmoid(logit)
    readmitted = (rng.random(n) < risk).astype(np.int64)
    label = readmitted.copy()
    shift = np.zeros(n)
    for plant in plants:
        if isinstance(plant, MissedReadmissions):
            missed = _members(columns, plant) & (rng.random(n) < plant.rate)
            label[missed] = 0
        elif isinstance(plant, ScoreShift):
            shift[_members(columns, plant)] += plant.logit
    columns.update(
        risk=risk,
        readmitted=readmitted,
        label=label,
        reference_score=_sigmoid(logit + shift),
    )
    return Cohort(columns)


def true_logit(columns: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """The documented logistic model of 30-day readmission on clinical features."""
    terms = {
        "age_decades_over_65": (columns["age"] - 65) / 10.0,
        "charlson_index": columns["charlson_index"],
        "prior_admissions_12m": columns["prior_admissions_12m"],
        "ed_visits_6m": columns["ed_visits_6m"],
        "log_length_of_stay_days": np.log(columns["length_of_stay_days"]),
        "medication_count_over_6": columns["medication_count"] - 6,
    }
    logit = np.full(len(columns["age"]), TRUE_INTERCEPT)
    for name, coefficient in TRUE_COEFFICIENTS.items():
        logit = logit + coefficient * terms[name]
    return logit


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def _probabilities(mix: Mapping[str, float], groups: Sequence[str], what: str) -> tuple[float, ...]:
    unknown = set(mix) - set(groups)
    if unknown:
        raise ValueError(f"{what}: unknown groups {sorted(unknown)}; known: {list(groups)}")
    weights = np.array([mix.get(group, 0.0) for group in groups], dtype=np.float64)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"{what}: weights must be non-negative and not all zero")
    return tuple((weights / weights.sum()).tolist())


def _choice(
    rng: np.random.Generator, groups: Sequence[str], p: Sequence[float], n: int
) -> npt.NDArray[np.str_]:
    return np.asarray(groups)[rng.choice(len(groups), size=n, p=p)]


def _conditional_choice(
    rng: np.random.Generator,
    given: npt.NDArray[np.str_],
    table: Mapping[str, Sequence[float]],
    n: int,
    groups: Sequence[str] = ADI_QUINTILES,
) -> npt.NDArray[np.str_]:
    """For each row, a group drawn from ``table[given[row]]`` (inverse CDF per condition)."""
    u = rng.random(n)
    picks = np.zeros(n, dtype=np.int64)
    for key, p in table.items():
        rows = given == key
        cdf = np.cumsum(p)
        picks[rows] = np.minimum(np.searchsorted(cdf, u[rows], side="right"), len(p) - 1)
    return np.asarray(groups)[picks]


def _payer(
    rng: np.random.Generator, age: npt.NDArray[np.int64], adi: npt.NDArray[np.str_]
) -> npt.NDArray[np.str_]:
    """Medicare from 65; below it Medicaid and self-pay grow with deprivation."""
    deprivation = adi.astype(np.int64) - 1  # 0..4
    medicaid = 0.10 + 0.06 * deprivation
    selfpay = 0.05 + 0.01 * deprivation
    medicare = np.full(len(age), 0.07)  # disability
    old = age >= 65
    medicare[old], medicaid[old], selfpay[old] = 0.88, 0.06, 0.01
    u = rng.random(len(age))
    payer = np.full(len(age), "Commercial", dtype="<U10")
    payer[u < medicare + medicaid + selfpay] = "SelfPay"
    payer[u < medicare + medicaid] = "Medicaid"
    payer[u < medicare] = "Medicare"
    return payer


def _members(columns: Mapping[str, npt.NDArray[Any]], plant: Plant) -> npt.NDArray[np.bool_]:
    if plant.attribute not in DEMOGRAPHICS:
        raise ValueError(
            f"plant {plant}: attribute must be one of {list(DEMOGRAPHICS)}, got {plant.attribute!r}"
        )
    members: npt.NDArray[np.bool_] = columns[plant.attribute] == plant.group
    return members
