"""The only module of the operator that talks to the Kubernetes API server.

Synchronous calls through the official client (handlers run them in a thread).
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
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client
from kubernetes import config as _config
from kubernetes import dynamic as _dynamic
from kubernetes.dynamic.exceptions import DynamicApiError

FIELD_MANAGER = "equiguard-operator"
COMPONENT = "equiguard-operator"
_CONFLICT_RETRIES = 3
_API_PROBE_SECONDS = 300.0
# The client's configuration and dynamic modules carry no type annotations.
config: Any = _config
dynamic: Any = _dynamic


class Transient(Exception):
    """The API server could not do it now; the same call may succeed later."""


class Rejected(Exception):
    """The API server refused the request, and retrying it unchanged will not help."""


def _reason(error: client.ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)


def _translate(error: Exception) -> Exception:
    if isinstance(error, client.ApiException):
        status = int(error.status or 0)
        if status in (409, 429) or status >= 500 or status == 0:
            return Transient(f"{status}: {_reason(error)}")
        return Rejected(f"{status}: {_reason(error)}")
    return Transient(f"{type(error).__name__}: {error}")


class Kube:
    """Typed access to the few API calls the operator makes."""

    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or client.ApiClient()
        self.dynamic = dynamic.DynamicClient(self.api)
        # The dynamic client's discovery cache is not safe for concurrent use.
        self._discovery = threading.Lock()
        self._api_checked: dict[str, tuple[float, bool]] = {}

    @classmethod
    def from_environment(cls) -> Kube:
        """In a pod, its ServiceAccount; elsewhere, KUBECONFIG or ~/.kube/config."""
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls()

    def _resource(self, api_version: str, kind: str) -> Any:
        with self._discovery:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def _call(self, action: Any) -> Any:
        """Runs an API call, retrying 409 conflicts a few times, translating failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except DynamicApiError as error:
                if error.status == 409 and attempt < _CONFLICT_RETRIES:
                    time.sleep(0.2 * attempt)
                    continue
                raise _translate(error) from error
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise _translate(error) from error

    # -- objects ----------------------------------------------------------

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, taking ownership of every field we set (drift is undone)."""
        resource = self._resource(body["apiVersion"], body["kind"])
        result = self._call(
            lambda: self.dynamic.server_side_apply(
                resource,
                body=dict(body),
                namespace=body["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        )
        applied: dict[str, Any] = result.to_dict()
        return applied

    def patch_status(self, owner: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Merge-patches the status subresource (no resourceVersion: no conflicts to lose)."""
        meta = owner["metadata"]
        resource = self._resource(owner["apiVersion"], owner["kind"]).subresources["status"]
        self._call(
            lambda: self.dynamic.patch(
                resource,
                body={"status": dict(status)},
                name=meta["name"],
                namespace=meta["namespace"],
                content_type="application/merge-patch+json",
            )
        )

    def create_if_absent(self, body: Mapping[str, Any]) -> bool:
        """Creates the object; False when one of that name already exists."""
        resource = self._resource(body["apiVersion"], body["kind"])
        try:
            self.dynamic.create(
                resource, body=dict(body), namespace=body["metadata"].get("namespace")
            )
        except DynamicApiError as error:
            if error.status == 409:
                return False
            raise _translate(error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _translate(error) from error
        return True

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._resource(api_version, kind)
        try:
            found = self.dynamic.get(resource, name=name, namespace=namespace)
        except DynamicApiError as error:
            if error.status == 404:
                return None
            raise _translate(error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise _translate(error) from error
        body: dict[str, Any] = found.to_dict()
        return body

    def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        label_selector = ",".join(f"{key}={value}" for key, value in selector.items())
        found = self._call(
            lambda: self.dynamic.get(resource, namespace=namespace, label_selector=label_selector)
        )
        items: list[dict[str, Any]] = found.to_dict().get("items", [])
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
        group, _, version = api_version.rpartition("/")
        try:
            served = client.CustomObjectsApi(self.api).get_api_resources(group, version)
            present = any(resource.kind == kind for resource in served.resources)
        except client.ApiException as error:
            if error.status != 404:
                raise _translate(error) from error
            present = False
        except (urllib3.exceptions.HTTPError, OSError) as error:
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
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
            },
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
        }
        self.create_if_absent(event)
