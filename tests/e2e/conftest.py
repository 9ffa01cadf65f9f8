"""Fixtures for tests on the local control plane (`make cluster-up`).

Every test gets a fresh namespace, deleted afterwards. Without KUBECONFIG the
tests are skipped with the reason, except in CI (CI=true), where a missing
cluster fails them; with a KUBECONFIG whose API server does not answer they
fail, so a broken cluster never passes for a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.kube import TEST_NAMESPACE_LABELS, Kubectl
from helpers.unavailable import unavailable
from kubernetes import client, config


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        unavailable("no local control plane: run `make cluster-up` and export its KUBECONFIG")
    return path


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> client.ApiClient:
    config.load_kube_config(kubeconfig)
    api = client.ApiClient()
    client.VersionApi(api).get_code()  # fails the session loudly if the server is down
    return api


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=TEST_NAMESPACE_LABELS))
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)
