"""What a client and an outcome feed would send about a cohort.

Prediction requests carry the features as the JSON body and the demographics
where the ClinicalModel's subgroup sources say; outcome messages are
``{request_id, label}``, with demographics where an EHR feed sends them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from equiguard.cohort.population import FEATURES, Cohort

SourceKind = Literal["field", "header", "context"]

# Where the readmission example's ClinicalModel finds each subgroup attribute
# (examples/readmission/clinicalmodel.yaml; a unit test keeps them equal).
READMISSION_SOURCES: Mapping[str, tuple[SourceKind, str]] = {
    "race": ("context", "race"),
    "sex": ("context", "sex"),
    "age_band": ("field", "age"),
    "payer": ("context", "payer"),
    "language": ("header", "X-Patient-Language"),
    "adi_quintile": ("context", "adi_quintile"),
}

CONTEXT_FIELD = "equiguard_context"
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass(frozen=True)
class PredictionRequest:
    """One call a client makes: the JSON body and the HTTP headers it sends."""

    request_id: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def request_ids(n: int, prefix: str = "req-") -> list[str]:
    """The request id of row i: ``prefix`` followed by i, zero-padded."""
    return [f"{prefix}{i:08d}" for i in range(n)]


def prediction_requests(
    cohort: Cohort,
    sources: Mapping[str, tuple[SourceKind, str]] = READMISSION_SOURCES,
    *,
    id_prefix: str = "req-",
) -> list[PredictionRequest]:
    """What a client sends for each row: FEATURES as the body, demographics per ``sources``.

    A ``context`` or ``header`` attribute takes its value from the cohort column
    named like the attribute; a ``field`` attribute reads the body field of that
    name, which must be a cohort column (``age`` is a feature anyway).
    """
    body_columns = list(FEATURES)
    context_columns: list[tuple[str, str]] = []
    header_columns: list[tuple[str, str]] = []
    for name, (kind, key) in sources.items():
        if kind == "field":
            _require_column(cohort, key, name)
            if key not in body_columns:
                body_columns.append(key)
        else:
            _require_column(cohort, name, name)
            (context_columns if kind == "context" else header_columns).append((key, name))

    ids = request_ids(len(cohort), id_prefix)
    as_lists = {name: cohort[name].tolist() for name in cohort.columns}
    requests = []
    for i, request_id in enumerate(ids):
        body: dict[str, Any] = {name: as_lists[name][i] for name in body_columns}
        if context_columns:
            body[CONTEXT_FIELD] = {key: as_lists[name][i] for key, name in context_columns}
        headers = {key: as_lists[name][i] for key, name in header_columns}
        headers[REQUEST_ID_HEADER] = request_id
        requests.append(PredictionRequest(request_id, body, headers))
    return requests


def outcome_messages(
    cohort: Cohort,
    *,
    id_prefix: str = "req-",
    subgroups: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """What an outcome feed sends: ``{request_id, label}`` per row, with the
    recorded label and, as EHR feeds do, the named demographic columns."""
    for name in subgroups:
        _require_column(cohort, name, name)
    labels = cohort["label"].tolist()
    extra = {name: cohort[name].tolist() for name in subgroups}
    return [
        {"request_id": request_id, "label": labels[i]} | {k: v[i] for k, v in extra.items()}
        for i, request_id in enumerate(request_ids(len(cohort), id_prefix))
    ]


def _require_column(cohort: Cohort, column: str, attribute: str) -> None:
    if column not in cohort.columns:
        raise KeyError(
            f"attribute {attribute!r} needs a cohort column {column!r}; "
            f"columns are {sorted(cohort.columns)}"
        )
