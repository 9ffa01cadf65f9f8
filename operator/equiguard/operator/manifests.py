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
from datetime import UTC, datetime
from typing import Any

import yaml
from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel

# The ConfigMap holds a template; an init container renders it into the pod's
# own file, filling in what only the pod knows (its address, its revision).
TEMPLATE_DIR = "/etc/equiguard/template"
CONFIG_DIR = "/var/run/equiguard"
CONFIG_FILE = "sidecar.yaml"
DATA_DIR = "/var/lib/equiguard"
POD_IP_PLACEHOLDER = "@POD_IP@"
REVISION_PLACEHOLDER = "@REVISION@"
TOKEN_ENV = "EQUIGUARD_OUTCOMES_TOKEN"
DSN_ENV = "EQUIGUARD_STORE_DSN"
# A recalibrated revision's calibration document, from its ConfigMap.
CALIBRATION_DIR = "/etc/equiguard/calibration"
CALIBRATION_KEY = "calibration.json"
# The spec sections the sidecar reads; the rest would only roll pods needlessly.
_SIDECAR_SPEC_KEYS = ("prediction", "subgroups", "slos", "outcomes")

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


def sidecar_config(model: ClinicalModel) -> dict[str, Any]:
    """The sidecar's configuration template: the spec plus where to listen, proxy and store.

    The SQLite path is relative: the sidecar runs in its data volume.
    """
    store = model.spec["outcomes"].get("store", {"type": "sqlite"})
    if store.get("type", "sqlite") == "sqlite":
        store_config = {"type": "sqlite", "path": "predictions.db"}
    else:
        store_config = {"type": "postgresql", "dsnEnv": DSN_ENV}
    return {
        "model": {
            "name": model.name,
            "namespace": model.namespace,
            "revision": REVISION_PLACEHOLDER,
        },
        "spec": {key: model.spec[key] for key in _SIDECAR_SPEC_KEYS if key in model.spec},
        "sidecar": {
            "host": POD_IP_PLACEHOLDER,
            "port": names.SIDECAR_PORT,
            "upstream": f"http://{POD_IP_PLACEHOLDER}:{names.MODEL_PORT}",
            "tokenEnv": TOKEN_ENV,
            "store": store_config,
        },
    }


def build_configmap(model: ClinicalModel) -> dict[str, Any]:
    config = yaml.safe_dump(sidecar_config(model), sort_keys=True)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names.configmap_name(model.name),
            "labels": names.common_labels(model.name, "sidecar-config"),
        },
        "data": {CONFIG_FILE: config},
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


def _model_volumes(model: ClinicalModel, revision: Revision) -> list[dict[str, Any]]:
    configmap = names.calibration_configmap_name(model.name, revision.bento)
    return [] if configmap is None else [{"name": "calibration", "configMap": {"name": configmap}}]


def _model_container(model: ClinicalModel, revision: Revision, images: Images) -> dict[str, Any]:
    probe_port = names.MODEL_PORT
    calibration = _model_volumes(model, revision)
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
    }


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
                        *_model_volumes(model, revision),
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


RECALIBRATION_DIR = "/etc/equiguard/recalibration"
RECALIBRATION_MANIFEST = "clinicalmodel.yaml"
# Exit codes of `equiguard recalibrate` that retrying cannot change: 2 a bad
# manifest or usage, 3 a candidate refused by the acceptance criteria.
_FINAL_EXIT_CODES = [2, 3]


def recalibration_manifest_name(job: str) -> str:
    return f"{job}-model"


def build_recalibration_manifest(model: ClinicalModel, job: str) -> dict[str, Any]:
    """The ConfigMap holding the ClinicalModel the Job recalibrates, as a manifest file."""
    manifest = {
        "apiVersion": "equiguard.io/v1alpha1",
        "kind": "ClinicalModel",
        # The UID lets the Job make the model the owner of the calibration it publishes.
        "metadata": {"name": model.name, "namespace": model.namespace, "uid": model.uid},
        "spec": dict(model.spec),
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": recalibration_manifest_name(job),
            "labels": names.common_labels(model.name, "recalibration"),
        },
        "data": {RECALIBRATION_MANIFEST: yaml.safe_dump(manifest, sort_keys=True)},
    }


def _store_arguments(model: ClinicalModel) -> tuple[list[str], list[dict[str, Any]]]:
    """How the Job reaches the joined outcomes: the shared DSN, or the sidecar's API."""
    store = model.spec["outcomes"].get("store", {})
    if store.get("type") == "postgresql":
        dsn = store["dsnSecret"]
        env = {
            "name": DSN_ENV,
            "valueFrom": {"secretKeyRef": {"name": dsn["name"], "key": dsn.get("key", "dsn")}},
        }
        return ["--store-env", DSN_ENV], [env]
    # Each pod keeps its own SQLite file on an emptyDir that a Job cannot mount: the
    # Job reads it through the sidecar's API, with its token, behind the model's
    # Service (one replica; docs/recalibration.md).
    token = model.spec["outcomes"]["tokenSecret"]
    env = {
        "name": TOKEN_ENV,
        "valueFrom": {"secretKeyRef": {"name": token["name"], "key": token.get("key", "token")}},
    }
    url = f"http://{names.service_name(model.name)}.{model.namespace}.svc"
    return ["--store", url, "--store-token-env", TOKEN_ENV], [env]


def _label_env(name: str, label: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}


def build_job(
    model: ClinicalModel,
    revision: Revision,
    slo: str,
    images: Images,
    until: datetime | None = None,
    service_account: str = "equiguard-recalibration",
) -> dict[str, Any]:
    """The recalibration Job for (model, revision, SLO); its name is its identity.

    Its command follows docs/recalibration.md: the manifest from its ConfigMap,
    the outcomes up to `until` (the decision's time), the result written to the
    ConfigMap `<job>-result`, owned by the Job.
    """
    job = names.recalibration_job_name(model.name, revision.bento, slo)
    labels = {
        **names.common_labels(model.name, "recalibration"),
        names.REVISION_LABEL: names.revision_label(revision.bento),
        names.SLO_LABEL: slo,
    }
    store_arguments, store_env = _store_arguments(model)
    command = [
        "equiguard", "recalibrate",
        "--model", f"{RECALIBRATION_DIR}/{RECALIBRATION_MANIFEST}",
        *store_arguments,
        "--revision", revision.bento,
        "--slo", slo,
        "--out", "/tmp/recalibration",
        # The candidate reaches the model pods as its calibration's ConfigMap.
        "--calibration-configmap",
        "--result-configmap", f"{job}-result",
        "--namespace", model.namespace,
        "--job-name", "$(JOB_NAME)",
        "--job-uid", "$(JOB_UID)",
    ]  # fmt: skip
    if until is not None:
        command += ["--until", until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    # A recalibrated revision is recalibrated again from its calibration, mounted.
    calibration = _model_volumes(model, revision)
    if calibration:
        command += ["--calibration", f"{CALIBRATION_DIR}/{CALIBRATION_KEY}"]
    # The base bentos are read (never written) from the Job image's bento store, or
    # model_env's BENTOML_HOME: the store the model containers serve from.
    env = with_model_env(
        [
            _label_env("JOB_NAME", "batch.kubernetes.io/job-name"),
            _label_env("JOB_UID", "batch.kubernetes.io/controller-uid"),
            {"name": "BENTOML_DO_NOT_TRACK", "value": "True"},
            *store_env,
        ],
        images,
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job,
            "labels": labels,
            "annotations": {names.REVISION_ANNOTATION: revision.bento},
        },
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": 3600,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "recalibrate",
                            "operator": "In",
                            "values": _FINAL_EXIT_CODES,
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    # The Job writes its result ConfigMap, so it needs its own identity.
                    "serviceAccountName": service_account,
                    "automountServiceAccountToken": True,
                    "securityContext": _POD_SECURITY,
                    **_placement(model),
                    "containers": [
                        {
                            "name": "recalibrate",
                            "image": images.job,
                            "command": command,
                            "env": env,
                            "resources": _SIDECAR_RESOURCES,
                            "securityContext": _CONTAINER_SECURITY,
                            "volumeMounts": [
                                {
                                    "name": "manifest",
                                    "mountPath": RECALIBRATION_DIR,
                                    "readOnly": True,
                                },
                                {"name": "tmp", "mountPath": "/tmp"},
                                *({"name": v["name"], "mountPath": CALIBRATION_DIR,
                                   "readOnly": True} for v in calibration),
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "manifest",
                            "configMap": {"name": recalibration_manifest_name(job)},
                        },
                        {"name": "tmp", "emptyDir": {}},
                        *calibration,
                    ],
                },
            },
        },
    }
