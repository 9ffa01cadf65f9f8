"""A real `equiguard sidecar` process on loopback, in front of a real model server.

``sidecar_config`` writes the configuration the operator would render from
examples/readmission/clinicalmodel.yaml; ``start_sidecar`` runs
``python -m equiguard sidecar`` with it and returns once /healthz answers.
Used by the sidecar's integration tests and benchmarks.
"""

from __future__ import annotations

import copy
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from equiguard.cohort import Cohort
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout

from helpers.bento import LOOPBACK, REPO, free_port

EXAMPLE = REPO / "examples" / "readmission" / "clinicalmodel.yaml"
TOKEN = "outcome-feed-token-for-tests"


def example_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())["spec"]
    return spec


def sidecar_config(
    upstream: str,
    folder: Path,
    *,
    store: Mapping[str, Any] | None = None,
    revision: str = "v1",
    replica_id: str = "replica-a",
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration of one replica; the token is in ``folder``/token."""
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    return {
        "model": {"name": "readmission-risk", "namespace": "clinical", "revision": revision},
        "spec": copy.deepcopy(dict(spec or example_spec())),
        "sidecar": {
            "upstream": upstream,
            "host": LOOPBACK,
            "tokenFile": str(token_file),
            "store": dict(store or {"type": "sqlite", "path": str(folder / "predictions.db")}),
            "replicaId": replica_id,
            "journalDir": str(folder / "prediction-journal"),
        },
    }


def pooled_statistics(
    cohort: Cohort, risks: np.ndarray, rows: np.ndarray | None = None
) -> Statistics:
    """The engine's statistics of cohort rows (all, or the selected ones) with the
    example's subgroups: what the sidecars of a model should add up to."""
    spec = parse_model(
        {
            "apiVersion": "equiguard.io/v1alpha1",
            "kind": "ClinicalModel",
            "metadata": {"name": "readmission-risk"},
            "spec": example_spec(),
        }
    )
    layout = CellLayout.from_spec(spec.subgroups)
    selected = np.arange(len(cohort)) if rows is None else rows
    columns = {
        a.name: cohort[a.name][selected] for a in spec.subgroups.attributes if a.name != "age_band"
    }
    columns["age_band"] = cohort["age"][selected]
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(
        layout.assign(columns, len(selected)),
        risks[selected],
        cohort["label"][selected].astype(int),
    )
    return stats


def assert_same_statistics(served: Statistics, expected: Statistics) -> None:
    """Counts exactly equal; sums of scores equal up to the order of addition."""
    assert served.cells == expected.cells
    np.testing.assert_array_equal(served.histogram, expected.histogram)
    np.testing.assert_allclose(served.score_sums, expected.score_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        served.squared_error_sums, expected.squared_error_sums, rtol=1e-12, atol=1e-12
    )


@dataclass
class SidecarProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop with ``sig`` (SIGKILL to crash it) and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_sidecar(
    config: Mapping[str, Any],
    folder: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 30.0,
    ca_file: Path | None = None,
) -> SidecarProcess:
    """Start a sidecar; with ``ca_file`` it serves HTTPS with a certificate signed by it."""
    port = port or free_port()
    config_file = folder / f"sidecar-{port}.yaml"
    config_file.write_text(yaml.safe_dump(dict(config)))
    log = folder / f"sidecar-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "equiguard", "sidecar", "--config", str(config_file),
             "--port", str(port)],
            env=os.environ | dict(env or {}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    scheme = "https" if ca_file else "http"
    sidecar = SidecarProcess(f"{scheme}://{LOOPBACK}:{port}", port, process, log)
    tls = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    deadline = time.monotonic() + ready_timeout
    while not _healthy(sidecar.url, tls):
        if process.poll() is not None or time.monotonic() > deadline:
            sidecar.stop(signal.SIGKILL)
            raise RuntimeError(f"the sidecar did not start:\n{sidecar.log_text()[-3000:]}")
        time.sleep(0.05)
    return sidecar


@contextmanager
def running_sidecar(
    config: Mapping[str, Any], folder: Path, **options: Any
) -> Iterator[SidecarProcess]:
    sidecar = start_sidecar(config, folder, **options)
    try:
        yield sidecar
    finally:
        sidecar.stop()


def _healthy(url: str, tls: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=tls) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
