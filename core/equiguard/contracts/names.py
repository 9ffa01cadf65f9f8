"""Deterministic names and labels of everything the operator creates.

A child's name depends only on what it is for (the model, the revision, the
trigger), never on when it was made, so an operator restarted at any point
finds what it already created instead of making a second one.
"""

from __future__ import annotations

import hashlib
import re

GROUP = "equiguard.io"
MODEL_LABEL = f"{GROUP}/model"
REVISION_LABEL = f"{GROUP}/revision"
COMPONENT_LABEL = "app.kubernetes.io/component"
REVISION_ANNOTATION = f"{GROUP}/revision"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
SLO_LABEL = f"{GROUP}/slo"
DECISION_LABEL = f"{GROUP}/decision"
RETRY_ANNOTATION = f"{GROUP}/retry-revision"

SIDECAR_PORT = 8080
MODEL_PORT = 3000

_LABEL_VALUE_MAX = 63
_NOT_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def digest(*parts: str, length: int = 10) -> str:
    """A short, stable hex digest of the parts (joined unambiguously)."""
    text = "\x1f".join(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def revision_label(revision: str) -> str:
    """A label value for a bento tag: readable when it fits, hashed when it does not.

    The exact tag is kept in the REVISION_ANNOTATION; the label only narrows a
    selection, so a collision between two exotic tags could never mix them up.
    """
    value = _NOT_LABEL_CHARS.sub(".", revision).strip("._-")
    if len(value) <= _LABEL_VALUE_MAX:
        return value
    return f"{value[: _LABEL_VALUE_MAX - 11].rstrip('._-')}-{digest(revision)}"


def common_labels(model: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "clinicalmodel",
        "app.kubernetes.io/instance": model,
        "app.kubernetes.io/managed-by": "equiguard",
        "app.kubernetes.io/part-of": "equiguard",
        COMPONENT_LABEL: component,
        MODEL_LABEL: model,
    }


def selector_labels(model: str) -> dict[str, str]:
    """The Deployment's (immutable) selector: the model, not the revision."""
    return {MODEL_LABEL: model, COMPONENT_LABEL: "model-server"}


def deployment_name(model: str) -> str:
    return model


def service_name(model: str) -> str:
    return model


def configmap_name(model: str) -> str:
    return f"{model}-sidecar"


def prometheus_rule_name(model: str) -> str:
    return f"{model}-equity"


def recalibration_job_name(model: str, revision: str, slo: str) -> str:
    """One Job per (model, serving revision, triggering SLO); at most 52 characters."""
    return f"{model}-recal-{digest(revision, slo)}"


def decision_name(model: str, kind: str, identity: tuple[str, ...]) -> str:
    """The EquityDecision name for one decision; identity holds what makes it unique."""
    return f"{model}-{kind.lower()}-{digest(*identity, length=12)}"


# A recalibrated revision's tag ends in -recal-<digest>, the digest of its
# calibration document (equiguard.recalibration.bento.candidate_tag).
_CALIBRATED = re.compile(r"-recal-([0-9a-f]{10})$")


def calibration_digest(revision: str) -> str | None:
    """The calibration digest a recalibrated revision's tag ends with; None for a bento."""
    found = _CALIBRATED.search(revision.partition(":")[2])
    return found.group(1) if found else None


# The one key of a calibration ConfigMap: the Job writes it, model pods and Jobs mount it.
CALIBRATION_KEY = "calibration.json"


def calibration_configmap_name(model: str, revision: str) -> str | None:
    """The immutable ConfigMap holding a recalibrated revision's calibration, named by the
    digest of its content; None when `revision` is not a recalibrated one."""
    found = calibration_digest(revision)
    return None if found is None else f"{model}-calibration-{found}"


def change_record_file(model: str, job: str) -> str:
    """The base name of a recalibration's change record (`equiguard pccp`), which the
    report links: `<name>.md` for people, `<name>.json` for machines."""
    return f"{model}-change-{job}"
