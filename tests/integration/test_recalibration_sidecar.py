"""The recalibration Job of a single-replica model reads the joined outcomes through the
sidecar's API, not its file: a real `equiguard sidecar` in front of a real `bentoml serve`,
`equiguard recalibrate` run as a command against its URL, decides exactly as it does
reading the SQLite file itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.bento import BentoServer
from helpers.recalibration import NOW, cohort_outcomes, example_manifest, write_store
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config

pytestmark = pytest.mark.slow
SERVING = "readmission:v1"
# Enough rows for a few pages (5000 each) and for every group to be judged.
N, SEED, UNLABELLED = 12_000, 17, 300


def _recalibrate(folder: Path, store: str, out: str, env: dict[str, str]) -> dict[str, Any]:
    process = subprocess.run(
        [sys.executable, "-m", "equiguard", "recalibrate", "--model", str(folder / "model.yaml"),
         "--store", store, "--out", str(folder / out), "--until", str(NOW), "--window", "7d",
         "--dimension", "race"],
        capture_output=True, text=True, timeout=300, env=os.environ | env,
    )  # fmt: skip
    # Without a bento store a passing candidate is a usage error (2), after the decision.
    assert process.returncode in (2, 3), process.stderr
    if process.returncode == 2:
        assert "no BentoML store" in process.stderr
        return {"outcome": "Published"}
    result: dict[str, Any] = json.loads((folder / out / "assessment.json").read_text())
    return result


def test_the_job_reads_the_sidecars_outcomes_through_its_api_as_from_its_file(
    readmission_v1: BentoServer, tmp_path: Path
) -> None:
    manifest = example_manifest()
    _, outcomes = cohort_outcomes(manifest, N, SEED)
    write_store(tmp_path / "predictions.db", outcomes, SERVING, unlabelled=UNLABELLED)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    from_file = _recalibrate(tmp_path, str(tmp_path / "predictions.db"), "file", {})
    config = sidecar_config(readmission_v1.url, tmp_path, revision=SERVING)
    with running_sidecar(config, tmp_path) as sidecar:
        through_api = _recalibrate(
            tmp_path, sidecar.url, "api", {"EQUIGUARD_OUTCOMES_TOKEN": TOKEN}
        )
        # The rows are the sidecar's to give: not without its token.
        refused = subprocess.run(
            [sys.executable, "-m", "equiguard", "recalibrate", "--model",
             str(tmp_path / "model.yaml"), "--store", sidecar.url, "--out",
             str(tmp_path / "refused"), "--until", str(NOW), "--dimension", "race"],
            capture_output=True, text=True, timeout=120,
            env=os.environ | {"EQUIGUARD_OUTCOMES_TOKEN": "wrong"},
        )  # fmt: skip
        log = sidecar.log_text()
    assert refused.returncode == 1 and "401" in refused.stderr
    assert through_api == from_file
    if "outcomes" in from_file:  # refused: the assessment says how many it read
        assert sum(from_file["outcomes"].values()) == N - UNLABELLED
    # The rows stay out of the sidecar's log.
    assert "req-" not in log
