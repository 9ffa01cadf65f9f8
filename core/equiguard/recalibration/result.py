"""The Job's results in the API server: the result ConfigMap the operator reads, and a
published revision's calibration, which the model pods read.

The only module of the recalibration that talks to the API server. The result
ConfigMap's body is the contract's (`contracts.recalibration_result`): named by
the caller (the operator passes `<job name>-result`), labelled with the model,
and owned by the Job and the model, each when its UID is known: it goes when
both have gone, so the change record outlives the Job. Writing it twice (a
retried pod) replaces the first.
"""

from __future__ import annotations

from typing import Any

import urllib3
from equiguard.contracts import names
from kubernetes import client
from kubernetes import config as _config

CALIBRATION_COMPONENT = "calibration"
config: Any = _config  # the client's config module carries no type annotations


class ResultError(Exception):
    """The result could not be written to the API server."""


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
        "data": {names.CALIBRATION_KEY: document},
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
