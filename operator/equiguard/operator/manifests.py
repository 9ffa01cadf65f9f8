"""Pure builders of the children of a ClinicalModel: plain dicts, no API calls.

The handler adopts what these return (owner reference, namespace) and applies
it with server-side apply, so the same input always yields the same object and
a re-apply corrects any drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.sidecar_config import (
    CONFIG_FILE,
    DSN_ENV,
    POD_IP_PLACEHOLDER,
    REVISION_PLACEHOLDER,
    TOKEN_ENV,
    write_template,
)

# The ConfigMap holds a template; an init container renders it into the pod's
# own file, filling in what only the pod knows (its address, its revision).
TEMPLATE_DIR = "/etc/equiguard/template"
CONFIG_DIR = "/var/run/equiguard"
DATA_DIR = "/var/lib/equiguard"
# A recalibrated revision's calibration document, from its ConfigMap.
CALIBRATION_DIR = "/etc/equiguard/calibration"
CALIBRATION_KEY = names.CALIBRATION_KEY

_MODEL_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
_SIDECAR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}

# The Pod Security "restricted" profile, plus a read-only root filesystem.
_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}

_POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
_REVISION_ENV = {
    "name": "EQUIGUARD_REVISION",
    "valueFrom": {
        "fieldRef": {"fieldPath": f"metadata.annotations['{names.REVISION_ANNOTATION}']"}
    },
}


@dataclass(frozen=True)
class Images:
    """Images of the containers the operator adds, and what every model server gets."""

    sidecar: str
    job: str
    # The runtime that serves a spec's bento when its spec.model.image is absent.
    model: str
    # Environment of every model container, for runtimes that need it (e.g. BENTOML_HOME
    # when the bento store is not where the runtime image says).
    model_env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Revision:
    """A served model revision: the bento tag and the image that serves it."""

    bento: str
    image: str


def spec_revision(model: ClinicalModel, images: Images) -> Revision:
    """The revision the spec asks for: its bento, on spec.model.image or the operator's default."""
    return Revision(model.bento, model.image or images.model)


def with_model_env(env: list[dict[str, Any]], images: Images) -> list[dict[str, Any]]:
    """`env` with the operator's `--model-env` added; a variable given there replaces the
    operator's own of the same name (the API server refuses duplicate names)."""
    given = {name: value for name, value in images.model_env}
    kept = [variable for variable in env if variable["name"] not in given]
    return [*kept, *({"name": name, "value": value} for name, value in given.items())]


def build_configmap(model: ClinicalModel) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.configmap_name(model.name),
            "labels": names.common_labels(model.name, "sidecar-config"),
        },
        "data": {CONFIG_FILE: write_template(model)},
    }


def config_hash(configmap: Mapping[str, Any]) -> str:
    """A hash of the ConfigMap's data; put on the pod template so a change rolls the pods."""
    text = json.dumps(configmap["data"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _resources(model: ClinicalModel, container: str, default: dict[str, Any]) -> dict[str, Any]:
    declared = model.spec.get("resources", {}).get(container)
    return dict(declared) if declared else default


def _model_command(revision: Revision) -> list[str]:
    """`bentoml serve` of the bento; a recalibrated revision's calibration (its ConfigMap,
    mounted) applied by the runtime to the base bento of its image."""
    # Bind on the pod's own address: the sidecar is the only way in.
    address = ["--host", "$(POD_IP)", "--port", str(names.MODEL_PORT)]
    if names.calibration_digest(revision.bento) is None:
        return ["bentoml", "serve", revision.bento, *address]
    return ["equiguard", "serve-calibrated", "--revision", revision.bento,
            "--calibration", f"{CALIBRATION_DIR}/{CALIBRATION_KEY}", *address]  # fmt: skip


def calibration_volumes(model: ClinicalModel, revision: Revision) -> list[dict[str, Any]]:
    """The volume of a recalibrated revision's calibration ConfigMap; none for a bento."""
    configmap = names.calibration_configmap_name(model.name, revision.bento)
    return [] if configmap is None else [{"name": "calibration", "configMap": {"name": configmap}}]


def _model_container(model: ClinicalModel, revision: Revision, images: Images) -> dict[str, Any]:
    probe_port = names.MODEL_PORT
    calibration = calibration_volumes(model, revision)
    return {
        "name": "model",
        "image": revision.image,
        "command": _model_command(revision),
        "env": with_model_env(
            [
                _POD_IP_ENV,
                {"name": "BENTOML_DO_NOT_TRACK", "value": "True"},
                {"name": "TMPDIR", "value": "/tmp"},
            ],
            images,
        ),
        "ports": [{"name": "model", "containerPort": probe_port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": probe_port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": probe_port},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "startupProbe": {
            "httpGet": {"path": "/livez", "port": probe_port},
            "periodSeconds": 2,
            "failureThreshold": 150,
        },
        "resources": _resources(model, "model", _MODEL_RESOURCES),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "model-tmp", "mountPath": "/tmp"},
            *({"name": v["name"], "mountPath": CALIBRATION_DIR, "readOnly": True}
              for v in calibration),
        ],
    }  # fmt: skip


def _render_config_container(images: Images) -> dict[str, Any]:
    """Writes the pod's own sidecar configuration from the ConfigMap's template."""
    script = (
        f'sed -e "s|{POD_IP_PLACEHOLDER}|$POD_IP|g" '
        f'-e "s|{REVISION_PLACEHOLDER}|$EQUIGUARD_REVISION|g" '
        f"{TEMPLATE_DIR}/{CONFIG_FILE} > {CONFIG_DIR}/{CONFIG_FILE}"
    )
    return {
        "name": "render-config",
        "image": images.sidecar,
        "command": ["sh", "-c", script],
        "env": [_POD_IP_ENV, _REVISION_ENV],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "config-template", "mountPath": TEMPLATE_DIR, "readOnly": True},
            {"name": "config", "mountPath": CONFIG_DIR},
        ],
    }


def _sidecar_container(model: ClinicalModel, images: Images) -> dict[str, Any]:
    outcomes = model.spec["outcomes"]
    token = outcomes["tokenSecret"]
    env: list[dict[str, Any]] = [
        {
            "name": TOKEN_ENV,
            "valueFrom": {
                "secretKeyRef": {"name": token["name"], "key": token.get("key", "token")}
            },
        }
    ]
    store = outcomes.get("store", {})
    if store.get("type") == "postgresql":
        dsn = store["dsnSecret"]
        env.append(
            {
                "name": DSN_ENV,
                "valueFrom": {"secretKeyRef": {"name": dsn["name"], "key": dsn.get("key", "dsn")}},
            }
        )
    return {
        "name": "sidecar",
        "image": images.sidecar,
        "command": ["equiguard", "sidecar", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "workingDir": DATA_DIR,
        "env": env,
        "ports": [{"name": "http", "containerPort": names.SIDECAR_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": names.SIDECAR_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": names.SIDECAR_PORT},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": _resources(model, "sidecar", _SIDECAR_RESOURCES),
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "sidecar-tmp", "mountPath": "/tmp"},
        ],
    }


def _placement(model: ClinicalModel) -> dict[str, Any]:
    """The pods' nodeSelector and tolerations, when the spec declares them."""
    placement = model.spec.get("placement") or {}
    return {key: placement[key] for key in ("nodeSelector", "tolerations") if placement.get(key)}


def build_deployment(
    model: ClinicalModel, revision: Revision, images: Images, config_digest: str
) -> dict[str, Any]:
    """The model's Deployment serving `revision`: BentoML behind the recording sidecar."""
    labels = names.common_labels(model.name, "model-server")
    pod_labels = {**labels, names.REVISION_LABEL: names.revision_label(revision.bento)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.deployment_name(model.name),
            "labels": pod_labels,
            "annotations": {names.REVISION_ANNOTATION: revision.bento},
        },
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": names.selector_labels(model.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        names.REVISION_ANNOTATION: revision.bento,
                        names.CONFIG_HASH_ANNOTATION: config_digest,
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _POD_SECURITY,
                    "terminationGracePeriodSeconds": 30,
                    **_placement(model),
                    "initContainers": [_render_config_container(images)],
                    "containers": [
                        _sidecar_container(model, images),
                        _model_container(model, revision, images),
                    ],
                    "volumes": [
                        {
                            "name": "config-template",
                            "configMap": {"name": names.configmap_name(model.name)},
                        },
                        {"name": "config", "emptyDir": {}},
                        {"name": "data", "emptyDir": {}},
                        {"name": "sidecar-tmp", "emptyDir": {}},
                        {"name": "model-tmp", "emptyDir": {}},
                        *calibration_volumes(model, revision),
                    ],
                },
            },
        },
    }


def build_service(model: ClinicalModel) -> dict[str, Any]:
    """The model's Service: clients and the outcome feed reach the sidecar, never BentoML."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.service_name(model.name),
            "labels": names.common_labels(model.name, "model-server"),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(model.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
