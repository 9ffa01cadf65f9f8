"""The only module of the operator that talks to the Kubernetes API server.

Plain REST calls through the official client's configured connection (its
authentication, TLS and token refresh), with JSON in and out: the operator
knows every path it uses, so it needs no discovery and no generated models,
which cost three times the time of the call itself on every apply.

Errors come out as two kinds: `Transient` (retry later: 409 conflicts that
outlived the retries, 429, 5xx, connection failures) and `Rejected` (a 4xx that
will not heal by retrying: invalid object, forbidden); handlers turn the first
into a kopf retry and the second into a condition, never into a crash loop.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import urllib3
from kubernetes import client
from kubernetes import config as _config

FIELD_MANAGER = "equiguard-operator"
COMPONENT = "equiguard-operator"
_CONFLICT_RETRIES = 3
_API_PROBE_SECONDS = 300.0
_TIMEOUT_SECONDS = 30.0
# The client's own default is five connections per CPU; threads beyond that
# open a fresh TLS connection for every call and throw it away afterwards.
DEFAULT_CONNECTIONS = 16
# The client's configuration module carries no type annotations.
config: Any = _config

# The plural of every kind the operator and its commands read or write.
PLURALS: dict[str, str] = {
    "ConfigMap": "configmaps",
    "Event": "events",
    "Pod": "pods",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "Job": "jobs",
    "PrometheusRule": "prometheusrules",
    "ClinicalModel": "clinicalmodels",
    "EquityDecision": "equitydecisions",
}


class Transient(Exception):
    """The API server could not do it now; the same call may succeed later."""


class Rejected(Exception):
    """The API server refused the request, and retrying it unchanged will not help."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _translate(error: Exception) -> Exception:
    if isinstance(error, ApiError):
        if error.status in (409, 429) or error.status >= 500:
            return Transient(str(error))
        return Rejected(str(error))
    return Transient(f"{type(error).__name__}: {error}")


def path(api_version: str, kind: str, namespace: str, name: str = "", subresource: str = "") -> str:
    """The REST path of a namespaced object (or, without a name, of its collection)."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    out = f"{prefix}/namespaces/{quote(namespace)}/{PLURALS[kind]}"
    if name:
        out += f"/{quote(name)}"
    if subresource:
        out += f"/{subresource}"
    return out


class Kube:
    """The few API calls the operator makes, as JSON over the client's connection."""

    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or client.ApiClient()
        self._api_checked: dict[str, tuple[float, bool]] = {}
        self._requests: Counter[str] = Counter()
        self._requests_lock = threading.Lock()

    @classmethod
    def from_environment(cls, connections: int = DEFAULT_CONNECTIONS) -> Kube:
        """In a pod, its ServiceAccount; elsewhere, KUBECONFIG or ~/.kube/config.

        `connections`: how many calls may be under way at once without a new
        connection each (the operator's API threads).
        """
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        configuration = client.Configuration.get_default_copy()
        configuration.connection_pool_maxsize = max(
            connections, configuration.connection_pool_maxsize or 0
        )
        return cls(client.ApiClient(configuration))

    def requests_made(self) -> dict[str, int]:
        """Calls sent to the API server so far, by HTTP method."""
        with self._requests_lock:
            return dict(self._requests)

    def _request(
        self,
        method: str,
        resource_path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One call; the decoded JSON answer, or ApiError with the server's message."""
        with self._requests_lock:
            self._requests[method] += 1
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = self.api.param_serialize(
            method, resource_path, query_params=list((query or {}).items()),
            header_params=headers, body=body, auth_settings=["BearerToken"],
        )  # fmt: skip
        response = self.api.call_api(method, url, header_params=headers, body=body,
                                     _request_timeout=_TIMEOUT_SECONDS)  # fmt: skip
        data = cast(Any, response).read()  # RESTResponse.read carries no annotation
        if response.status >= 400:
            try:
                message = json.loads(data).get("message") or response.reason
            except (ValueError, AttributeError):
                message = response.reason
            raise ApiError(response.status, str(message))
        return json.loads(data) if data else None

    def _call(self, method: str, resource_path: str, **kwargs: Any) -> Any:
        """A call with 409 conflicts retried a few times and failures translated."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._request(method, resource_path, **kwargs)
            except ApiError as error:
                if error.status == 409 and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.2 * attempt)
                    continue
                raise _translate(error) from error
            except (urllib3.exceptions.HTTPError, OSError, client.ApiException) as error:
                raise _translate(error) from error

    # -- objects ----------------------------------------------------------

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, taking ownership of every field we set (drift is undone)."""
        meta = body["metadata"]
        applied: dict[str, Any] = self._call(
            "PATCH", path(body["apiVersion"], body["kind"], meta["namespace"], meta["name"]),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=dict(body), content_type="application/apply-patch+yaml",
        )  # fmt: skip
        return applied

    def patch_status(self, owner: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Merge-patches the status subresource (no resourceVersion: no conflicts to lose)."""
        meta = owner["metadata"]
        self._call(
            "PATCH",
            path(owner["apiVersion"], owner["kind"], meta["namespace"], meta["name"], "status"),
            body={"status": dict(status)}, content_type="application/merge-patch+json",
        )  # fmt: skip

    def create_if_absent(self, body: Mapping[str, Any]) -> bool:
        """Creates the object; False when one of that name already exists."""
        try:
            namespace = body["metadata"]["namespace"]
            self._request("POST", path(body["apiVersion"], body["kind"], namespace),
                          body=dict(body))  # fmt: skip
        except ApiError as error:
            if error.status == 409:
                return False
            raise _translate(error) from error
        except (urllib3.exceptions.HTTPError, OSError, client.ApiException) as error:
            raise _translate(error) from error
        return True

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._request("GET", path(api_version, kind, namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise _translate(error) from error
        except (urllib3.exceptions.HTTPError, OSError, client.ApiException) as error:
            raise _translate(error) from error
        return found

    def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{key}={value}" for key, value in selector.items())
        found = self._call(
            "GET", path(api_version, kind, namespace), query={"labelSelector": label_selector}
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded; None when the Secret or key is missing."""
        secret = self.get("v1", "Secret", namespace, name)
        if secret is None or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode().strip()

    def has_api(self, api_version: str, kind: str) -> bool:
        """Whether the cluster serves a kind (such as PrometheusRule), re-checked now and then."""
        key = f"{api_version}/{kind}"
        checked = self._api_checked.get(key)
        now = time.monotonic()
        if checked is not None and now - checked[0] < _API_PROBE_SECONDS:
            return checked[1]
        try:
            served = self._request("GET", f"/apis/{api_version}")
            present = any(item.get("kind") == kind for item in served.get("resources", []))
        except ApiError as error:
            if error.status != 404:
                raise _translate(error) from error
            present = False
        except (urllib3.exceptions.HTTPError, OSError, client.ApiException) as error:
            raise _translate(error) from error
        self._api_checked[key] = (now, present)
        return present

    # -- events -----------------------------------------------------------

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, name: str
    ) -> None:
        """A core/v1 Event about `involved`, once per name (a replay posts nothing new)."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.create_if_absent({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion", "equiguard.io/v1alpha1"),
                "kind": involved.get("kind", "ClinicalModel"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        })  # fmt: skip


def context_namespace() -> str:
    """The namespace of the kubeconfig's current context, else "default"."""
    # The client's config module carries no type annotations.
    config: Any = _config
    try:
        _, active = config.list_kube_config_contexts()
    except (config.ConfigException, OSError):
        return "default"
    namespace = (active or {}).get("context", {}).get("namespace")
    return str(namespace) if namespace else "default"
