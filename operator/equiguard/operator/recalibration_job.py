"""Pure builder of a recalibration Job and the ConfigMap holding the manifest it reads.

The Job runs `equiguard recalibrate` (docs/recalibration.md) on the pods' own
placement and security settings (`manifests`), with the same bento store as
the model containers, so the revision it publishes is the one they can serve.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.recalibration_result import result_name
from equiguard.contracts.sidecar_config import DSN_ENV, TOKEN_ENV
from equiguard.operator.manifests import (
    _CONTAINER_SECURITY,
    _POD_SECURITY,
    _SIDECAR_RESOURCES,
    CALIBRATION_DIR,
    CALIBRATION_KEY,
    Images,
    Revision,
    _placement,
    calibration_volumes,
    with_model_env,
)

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


def _calibration_mounts(volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": v["name"], "mountPath": CALIBRATION_DIR, "readOnly": True} for v in volumes]


def _label_env(name: str, label: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{label}']"}}}


def build_recalibration_job(
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
        "--result-configmap", result_name(job),
        "--namespace", model.namespace,
        "--job-name", "$(JOB_NAME)",
        "--job-uid", "$(JOB_UID)",
    ]  # fmt: skip
    if until is not None:
        command += ["--until", until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    # A recalibrated revision is recalibrated again from its calibration, mounted.
    calibration = calibration_volumes(model, revision)
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
                                *_calibration_mounts(calibration),
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
