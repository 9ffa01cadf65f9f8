"""A synthetic adult-inpatient cohort for 30-day readmission, with plantable inequities.

Every row is one index admission. The generator draws demographics, then
comorbidity and utilisation features that depend on them (older patients have
more comorbidity; patients from more deprived areas use the emergency
department more), then the true readmission risk from a fixed logistic model of
the clinical features only (``true_logit``). Demographics never enter the risk
directly, so a model that sees the clinical features can be fair to every group.

Known subgroup differences are planted on purpose (``Plant``):

- ``CostUnderRecording``: prior-year claims cost records less spending for a
  group at the same illness burden (unequal access, as Obermeyer et al. 2019
  found for Black patients). A model that uses cost as a proxy for need
  under-predicts that group's risk. ``DEFAULT_PLANTS`` carries this one for
  Black patients, so ``prior_cost_12m`` is a biased feature in every default
  cohort while the other features are not.
- ``MissedReadmissions``: a share of one group's true readmissions is recorded
  as none (for example readmissions to another hospital), i.e. label noise in
  ``label`` while ``readmitted`` keeps the truth.
- ``ScoreShift``: shifts one group's ``reference_score`` (the true risk) on the
  logit scale, so tests get a scored cohort with a known gap and no model.

The cohort turns into what a client and an outcome feed would send: prediction
requests (features as the JSON body, demographics where the ClinicalModel's
subgroup sources say) and outcome messages (``{request_id, label}``).

The cohort is drawn in ``population``, its traffic made in ``traffic``; this
package's names are the ones to import.
"""

from equiguard.cohort.population import (
    ADI_BY_RACE,
    ADI_QUINTILES,
    DEFAULT_PLANTS,
    DEFAULT_RACE_MIX,
    DEMOGRAPHICS,
    FEATURES,
    LANGUAGE_BY_RACE,
    LANGUAGES,
    RACES,
    SEXES,
    TRUE_COEFFICIENTS,
    TRUE_INTERCEPT,
    Cohort,
    CostUnderRecording,
    MissedReadmissions,
    Plant,
    ScoreShift,
    generate_cohort,
    true_logit,
)
from equiguard.cohort.traffic import (
    CONTEXT_FIELD,
    READMISSION_SOURCES,
    REQUEST_ID_HEADER,
    PredictionRequest,
    SourceKind,
    outcome_messages,
    prediction_requests,
    request_ids,
)

__all__ = [
    "ADI_BY_RACE",
    "ADI_QUINTILES",
    "CONTEXT_FIELD",
    "DEFAULT_PLANTS",
    "DEFAULT_RACE_MIX",
    "DEMOGRAPHICS",
    "FEATURES",
    "LANGUAGES",
    "LANGUAGE_BY_RACE",
    "RACES",
    "READMISSION_SOURCES",
    "REQUEST_ID_HEADER",
    "SEXES",
    "TRUE_COEFFICIENTS",
    "TRUE_INTERCEPT",
    "Cohort",
    "CostUnderRecording",
    "MissedReadmissions",
    "Plant",
    "PredictionRequest",
    "ScoreShift",
    "SourceKind",
    "generate_cohort",
    "outcome_messages",
    "prediction_requests",
    "request_ids",
    "true_logit",
]
