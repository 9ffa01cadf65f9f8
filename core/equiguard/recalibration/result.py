"""The Job's result where the operator reads it: a ConfigMap in the model's namespace.

The only module of the recalibration that talks to the API server. The
ConfigMap's body is the contract's (`contracts.recalibration_result`): named by
the caller (the operator passes `<job name>-result`), labelled with the model,
and owned by the Job when the Job's name and UID are given, so it goes when
the Job goes. Writing it twice (a retried pod) replaces the first.
"""

from __future__ import annotations

from typing import Any

import urllib3
from kubernetes import client
from kubernetes import config as _config

config: Any = _config  # the client's config module carries no type annotations


class ResultError(Exception):
    """The result could not be written to the API server."""


def write_result(namespace: str, body: dict[str, Any]) -> None:
    """Create the ConfigMap, or replace it when a previous attempt wrote one."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api: Any = client.CoreV1Api()  # takes plain dicts as bodies
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
