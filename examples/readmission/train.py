"""Train the readmission-risk model revisions on the synthetic cohort and save them.

    BENTOML_HOME=DIR BENTOML_DO_NOT_TRACK=True python examples/readmission/train.py [v1 v2]

saves ``readmission_risk:v1`` and ``readmission_risk:v2`` to the BentoML model
store in ``BENTOML_HOME`` (replacing earlier models of the same tag). Both
pipelines take the same input row, every field the service receives, in the
order stored in the model's metadata ``inputs``; each selects its own features.

- v1 uses the clinical features: comorbidity and utilisation counts.
- v2 swaps the utilisation counts for prior-year claims cost, which the cohort
  under-records for Black patients at the same need (see equiguard.cohort), so
  v2 misses far more of Black patients' readmissions than v1 does.

Demographics (race, sex, payer, language, deprivation) are never features.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass

import bentoml
import numpy as np
from bentoml.exceptions import NotFound
from equiguard.cohort import FEATURES, Cohort, generate_cohort
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

MODEL_NAME = "readmission_risk"
TRAINING_ROWS = 40_000
TRAINING_SEED = 20240101
# Heavy-tailed inputs enter on the log scale.
LOG_SCALED = ("length_of_stay_days", "prior_cost_12m")


@dataclass(frozen=True)
class Revision:
    features: tuple[str, ...]
    description: str


REVISIONS = {
    "v1": Revision(
        features=(
            "age",
            "charlson_index",
            "prior_admissions_12m",
            "ed_visits_6m",
            "length_of_stay_days",
            "medication_count",
        ),
        description="logistic regression on comorbidity and utilisation counts",
    ),
    "v2": Revision(
        features=("age", "length_of_stay_days", "medication_count", "prior_cost_12m"),
        description="logistic regression with prior-year claims cost in place of utilisation",
    ),
}


def build_pipeline(features: tuple[str, ...]) -> Pipeline:
    """An unfitted pipeline over the full FEATURES row that uses only ``features``."""
    unknown = set(features) - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; inputs are {list(FEATURES)}")
    logged = [FEATURES.index(name) for name in features if name in LOG_SCALED]
    plain = [FEATURES.index(name) for name in features if name not in LOG_SCALED]
    select = ColumnTransformer(
        [("log", FunctionTransformer(np.log1p), logged), ("plain", "passthrough", plain)]
    )
    return Pipeline(
        [("select", select), ("scale", StandardScaler()), ("fit", LogisticRegression())]
    )


def train(revision: str, cohort: Cohort) -> Pipeline:
    """Fit ``revision`` on the cohort's recorded labels."""
    pipeline = build_pipeline(REVISIONS[revision].features)
    pipeline.fit(cohort.feature_matrix(FEATURES), cohort["label"])
    return pipeline


def save(revision: str, pipeline: Pipeline) -> bentoml.Model:
    """Save as ``readmission_risk:<revision>``, replacing a model of that tag."""
    tag = f"{MODEL_NAME}:{revision}"
    with contextlib.suppress(NotFound):
        bentoml.models.delete(tag)
    model: bentoml.Model = bentoml.sklearn.save_model(
        tag,
        pipeline,
        labels={"revision": revision},
        metadata={
            "inputs": list(FEATURES),
            "features": list(REVISIONS[revision].features),
            "description": REVISIONS[revision].description,
            "training_rows": TRAINING_ROWS,
            "training_seed": TRAINING_SEED,
        },
    )
    return model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "revisions", nargs="*", help=f"some of {', '.join(REVISIONS)} (default: all)"
    )
    args = parser.parse_args(argv)
    if unknown := set(args.revisions) - set(REVISIONS):
        parser.error(f"unknown revisions {sorted(unknown)}; known: {sorted(REVISIONS)}")
    cohort = generate_cohort(TRAINING_ROWS, TRAINING_SEED)
    for revision in args.revisions or sorted(REVISIONS):
        model = save(revision, train(revision, cohort))
        print(f"saved {model.tag}: {REVISIONS[revision].description}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
