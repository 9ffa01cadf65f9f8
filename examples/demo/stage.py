"""The demo's stage: a PostgreSQL store, the chart and the demo's namespace, set up
before the story and cleared away after it."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from cluster import REPO, Cluster, CommandFailed

# The PostgreSQL runner the tests use: the model's pods and the recalibration
# Job share one prediction store.
sys.path.insert(0, str(REPO / "tests"))
from helpers.postgres import running_postgres

MODEL = "readmission-risk"
NAMESPACE = "equiguard-demo"
OPERATOR_NAMESPACE = "equiguard-system"


@contextmanager
def prepared(cluster: Cluster) -> Iterator[str]:
    """A PostgreSQL store, the chart and the demo namespace; yields the token."""
    with running_postgres() as postgres:
        database = postgres.create_database()
        # What an earlier run left. (On a new cluster there is neither a model
        # nor, before the chart, its kind.)
        remove_model_and_namespace(cluster, check=True)
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.kubectl(
            "label", "namespace", NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"
        )
        print("installing equiguard from charts/equiguard", flush=True)
        cluster.helm(
            "upgrade", "--install", "equiguard", str(REPO / "charts/equiguard"),
            "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
            "--set", f"operator.watchNamespaces={{{NAMESPACE}}}",
            "--wait", "--timeout", "180s",
        )  # fmt: skip
        token = secrets.token_urlsafe(24)
        cluster.kubectl(
            "create", "secret", "generic", "readmission-outcomes-token", "-n", NAMESPACE,
            f"--from-literal=token={token}",
        )  # fmt: skip
        cluster.kubectl(
            "create", "secret", "generic", "readmission-store", "-n", NAMESPACE,
            f"--from-literal=dsn={postgres.pod_dsn(database)}",
        )  # fmt: skip
        try:
            yield token
        finally:
            clear_away(cluster)


def clear_away(cluster: Cluster) -> None:
    """Removes the demo's model, namespace and chart: its store stops with the demo,
    and a model left without it would hold the node's CPU, crash-looping."""
    print("removing the demo's model, namespace and chart", flush=True)
    remove_model_and_namespace(cluster, check=False)
    try:
        cluster.helm("uninstall", "equiguard", "--namespace", OPERATOR_NAMESPACE, "--wait")
        # Created for the chart (--create-namespace), so it goes with it.
        cluster.kubectl("delete", "namespace", OPERATOR_NAMESPACE, "--ignore-not-found",
                        "--timeout=100s", check=False)  # fmt: skip
    except CommandFailed as error:  # the story is told: say what is left, and how to remove it
        print(f"the chart is still installed ({error}); remove it with `helm uninstall "
              f"equiguard --namespace {OPERATOR_NAMESPACE}`", file=sys.stderr)  # fmt: skip


def remove_model_and_namespace(cluster: Cluster, *, check: bool) -> None:
    """The model goes first, while the operator may still act in the namespace:
    its permissions there go with the namespace."""
    cluster.kubectl("delete", "clinicalmodels", "--all", "-n", NAMESPACE, check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--timeout=100s",
                    check=check)  # fmt: skip
