"""The Job's result where the operator reads it: a ConfigMap in the model's namespace;
and a published revision's calibration, where the model pods read it.

The only module of the recalibration that talks to the API server. The
ConfigMap is named by the caller (the operator passes `<job name>-result`),
labelled with the model, and owned by the Job when the Job's name and UID are
given, so it goes when the Job goes. Writing it twice (a retried pod) replaces
the first. docs/recalibration.md lists its keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import urllib3
from equiguard.contracts import names
from kubernetes import client
from kubernetes import config as _config

COMPONENT = "recalibration-result"
CALIBRATION_COMPONENT = "calibration"
CALIBRATION_KEY = "calibration.json"
config: Any = _config  # the client's config module carries no type annotations


class ResultError(Exception):
    """The result could not be written to the API server."""


def result_configmap(
    name: str, model: str, serving_revision: str, data: Mapping[str, str],
    job_name: str | None, job_uid: str | None,
) -> dict[str, Any]:  # fmt: skip
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            **names.common_labels(model, COMPONENT),
            names.REVISION_LABEL: names.revision_label(serving_revision),
        },
        "annotations": {names.REVISION_ANNOTATION: serving_revision},
    }
    if job_name and job_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid}
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}


def _api() -> Any:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CoreV1Api()  # takes plain dicts as bodies


def calibration_configmap(
    name: str, model: str, model_uid: str | None, revision: str, document: str
) -> dict[str, Any]:
    """The immutable ConfigMap of a recalibrated revision: its calibration document, under
    the name the digest of that document gives (names.calibration_configmap_name).

    Owned by the ClinicalModel (when its UID is known), not the Job: the revision
    outlives the Job that made it.
    """
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            **names.common_labels(model, CALIBRATION_COMPONENT),
            names.REVISION_LABEL: names.revision_label(revision),
        },
        "annotations": {names.REVISION_ANNOTATION: revision},
    }
    if model_uid:
        metadata["ownerReferences"] = [{
            "apiVersion": f"{names.GROUP}/v1alpha1", "kind": "ClinicalModel",
            "name": model, "uid": model_uid,
        }]  # fmt: skip
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "immutable": True,
        "data": {CALIBRATION_KEY: document},
    }  # fmt: skip


def publish_calibration(namespace: str, body: dict[str, Any]) -> bool:
    """Create the calibration ConfigMap; False when it exists already.

    Its name is the digest of its content and it is immutable, so one of that name
    holds this document (a retried Job, or the same fit twice): nothing to read back,
    and the Job needs no right to read ConfigMaps.
    """
    try:
        _api().create_namespaced_config_map(namespace, body)
    except client.ApiException as error:
        if error.status == 409:
            return False
        raise ResultError(
            f"cannot write the calibration ConfigMap: {error.status} {error.reason}"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ResultError(f"cannot reach the API server: {error}") from None
    return True


def write_result(namespace: str, body: dict[str, Any]) -> None:
    """Create the ConfigMap, or replace it when a previous attempt wrote one."""
    api = _api()
    try:
        try:
            api.create_namespaced_config_map(namespace, body)
        except client.ApiException as error:
            if error.status != 409:
                raise
            api.replace_namespaced_config_map(body["metadata"]["name"], namespace, body)
    except client.ApiException as error:
        raise ResultError(
            f"cannot write the result ConfigMap: {error.status} {error.reason}"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ResultError(f"cannot reach the API server: {error}") from None
