"""Fixtures every test layer may use: real parts started on demand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.kube import Kubectl

pytest_plugins = ["helpers.bento", "helpers.postgres"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """A run starts on a node without the pods an interrupted run left."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig and Path(kubeconfig).exists():
        Kubectl(kubeconfig).remove_leftover_namespaces()
