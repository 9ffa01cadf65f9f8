"""BentoML service: 30-day readmission risk of one adult inpatient admission.

POST /predict with the admission's fields as the JSON body answers
``{"risk": <probability>, "model": "<model tag>"}``. Demographics are not
inputs: the service answers whether or not a client sends them, and ignores
fields it does not know.

Which model it serves is the bento argument ``model`` (a model-store tag),
fixed when the bento is built (``bentoml build --arg model=readmission_risk:v2``)
or given when serving from source (``bentoml serve --arg model=...``).
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MODEL_TAG = getattr(bentoml.use_arguments(), "model", "readmission_risk:latest")

Count = Annotated[int, Field(ge=0, le=1000)]


class Admission(BaseModel):
    """The model's inputs: one index admission's clinical features."""

    # Validation errors are logged by the server; they must not carry the
    # request's values (patient data) into the logs.
    model_config = ConfigDict(hide_input_in_errors=True)

    age: Annotated[int, Field(ge=18, le=120)]
    charlson_index: Annotated[int, Field(ge=0, le=40)]
    prior_admissions_12m: Count
    ed_visits_6m: Count
    length_of_stay_days: Annotated[float, Field(gt=0, le=365)]
    medication_count: Count
    prior_cost_12m: Annotated[float, Field(ge=0)]


@bentoml.service(workers=1, traffic={"timeout": 10})
class ReadmissionRisk:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        stored: Any = self.model_ref
        self.model = bentoml.sklearn.load_model(stored)
        self.model_tag = str(stored.tag)
        # The pipeline takes its inputs in the order it was trained with.
        self.inputs: list[str] = list(stored.info.metadata["inputs"])
        missing = set(self.inputs) - set(Admission.model_fields)
        if missing:
            raise ValueError(f"model {self.model_tag} needs inputs {sorted(missing)} the API lacks")

    @bentoml.api(input_spec=Admission)
    def predict(self, **admission: float) -> dict[str, float | str]:
        row = np.array([[admission[name] for name in self.inputs]], dtype=np.float64)
        risk = float(self.model.predict_proba(row)[0, 1])
        return {"risk": risk, "model": self.model_tag}
