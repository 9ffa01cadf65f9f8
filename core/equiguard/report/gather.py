"""Reading what a report needs: the ClinicalModel and its decision records from the
API server (through the operator's API module), and the owner's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import yaml
from equiguard.contracts import names
from equiguard.kube import Kube, Rejected
from equiguard.report import attribute_sets, development
from equiguard.report.material import ReportInput, read_input

API_VERSION = "equiguard.io/v1alpha1"


class GatherError(Exception):
    """What the report could not read, in a sentence for the user."""


def _not_served(kube: Kube, kind: str, crd: str) -> GatherError | None:
    """The sentence for a kind the API server does not serve (its CRD not applied)."""
    if kube.has_api(API_VERSION, kind):
        return None
    return GatherError(f"the API server does not serve {kind}: apply crds/{crd}")


def read_source_attributes(path: str) -> dict[str, str]:
    """The owner's source-attributes file: a YAML mapping of keys of any attribute set."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, Mapping):
        raise GatherError(f"{path}: the source-attributes file must be a YAML mapping")
    unknown = sorted(set(map(str, data)) - set(attribute_sets.OWNER_KEYS))
    if unknown:
        raise GatherError(
            f"{path}: unknown source attributes {', '.join(unknown)}; the keys are "
            + ", ".join(attribute_sets.OWNER_KEYS)
        )
    return {str(key): str(value) for key, value in data.items() if value is not None}


def decision_records(kube: Kube, namespace: str, model: str) -> list[dict[str, Any]]:
    try:
        return kube.list(API_VERSION, "EquityDecision", namespace, {names.MODEL_LABEL: model})
    except Rejected as error:  # a 404 among others: say so when the CRD is missing
        missing = _not_served(kube, "EquityDecision", "equitydecision.yaml")
        if missing is None:
            raise
        raise missing from error


def gather(
    kube: Kube,
    namespace: str,
    model: str,
    now: datetime,
    attributes_path: str | None = None,
    records_path: str | None = None,
    attribute_set: str = "",
) -> ReportInput:
    """Everything one report is made from."""
    body = kube.get(API_VERSION, "ClinicalModel", namespace, model)
    if body is None:  # not found, or the kind itself is not served
        missing = _not_served(kube, "ClinicalModel", "clinicalmodel.yaml")
        raise missing or GatherError(f"no ClinicalModel {model!r} in namespace {namespace!r}")
    records = decision_records(kube, namespace, model)
    attributes = read_source_attributes(attributes_path) if attributes_path else None
    assessment = development.assess(body, records_path) if records_path else None
    return read_input(body, records, now, assessment, attributes, attribute_set)
