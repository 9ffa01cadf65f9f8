"""From the sidecar's store to a served calibrated revision, with every part real:
a SQLite store written by the sidecar's store code, `equiguard recalibrate` run as a
command, the bento it builds, and `bentoml serve` answering calibrated scores."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from equiguard.cohort import FEATURES
from equiguard.recalibration.maps import Calibration
from helpers.bento import BentoServer, served_bento, start_bento
from helpers.recalibration import (
    EVEN_RACE_MIX,
    NOW,
    cohort_outcomes,
    example_manifest,
    model_scores,
    write_store,
)

pytestmark = pytest.mark.slow
SERVING = "readmission:v2"  # under-scores Black patients (their claims cost is under-recorded)
N, SEED = 150_000, 5


@dataclass
class Run:
    argv: list[str]
    out: Path
    process: subprocess.CompletedProcess[str]

    @property
    def result(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.out / "result.json").read_text())
        return loaded


def recalibrate(argv: list[str], out: Path) -> Run:
    process = subprocess.run(
        [sys.executable, "-m", "equiguard", "recalibrate", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Run(argv, out, process)


@pytest.fixture(scope="module")
def published(
    readmission_bento_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, Any]]:
    folder = tmp_path_factory.mktemp("recalibration")
    manifest = example_manifest()
    manifest["spec"]["model"]["bento"] = SERVING
    scores = model_scores(
        readmission_bento_home, "readmission_risk:v2", N, SEED, folder, EVEN_RACE_MIX
    )
    cohort, outcomes = cohort_outcomes(
        manifest, N, SEED, plants=(), scores=scores, race_mix=EVEN_RACE_MIX
    )
    write_store(folder / "predictions.db", outcomes, SERVING, unlabelled=500)
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
    argv = [
        "--model", str(folder / "model.yaml"), "--store", str(folder / "predictions.db"),
        "--out", str(folder / "out"), "--until", str(NOW), "--window", "7d",
        "--bento-home", str(readmission_bento_home),
    ]  # fmt: skip
    yield recalibrate(argv, folder / "out"), (cohort, outcomes)


def test_a_passing_candidate_is_published_as_a_bento_with_its_assessment(
    published: tuple[Run, Any], readmission_bento_home: Path
) -> None:
    run, _ = published
    assert run.process.returncode == 0, run.process.stderr
    result = run.result
    assert result["outcome"] == "Published" and result["reason"] == "CriteriaMet"
    tag = result["candidateRevision"]
    assert tag.startswith("readmission:v2-recal-") and tag in run.process.stdout
    bento = readmission_bento_home / "bentos" / "readmission" / tag.partition(":")[2]
    calibration = json.loads((bento / "src" / "calibration.json").read_text())
    assert calibration["base"] == {"bento": SERVING, "service": "service:ReadmissionRisk"}
    assessment = json.loads((run.out / "assessment.json").read_text())
    chosen = assessment["candidates"][-1]
    assert chosen["method"] == result["method"] and chosen["held"] is True
    assert calibration["layers"] == [chosen["calibration"]]
    assert "Black" in chosen["calibration"]["maps"]
    assert assessment["before"]["slos"]["tpr-gap-race"]["verdict"] == "Violated"
    assert chosen["after"]["slos"]["tpr-gap-race"]["verdict"] == "Met"


def test_publishing_the_same_calibration_again_reuses_the_same_bento(
    published: tuple[Run, Any], readmission_bento_home: Path
) -> None:
    run, _ = published
    tag = run.result["candidateRevision"]
    bento_yaml = (
        readmission_bento_home / "bentos" / "readmission" / tag.partition(":")[2] / "bento.yaml"
    )
    built = bento_yaml.stat().st_mtime_ns
    again = recalibrate(run.argv, run.out)
    assert again.process.returncode == 0, again.process.stderr
    assert again.result["candidateRevision"] == tag
    assert bento_yaml.stat().st_mtime_ns == built


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> float:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["model"] == "readmission_risk:v2"
    return float(answer["risk"])


def test_the_served_candidate_answers_the_base_models_score_calibrated_for_the_group(
    published: tuple[Run, Any], readmission_bento_home: Path, readmission_v2: BentoServer
) -> None:
    run, (cohort, outcomes) = published
    tag = run.result["candidateRevision"]
    bento = readmission_bento_home / "bentos" / "readmission" / tag.partition(":")[2]
    calibration = Calibration.from_dict(
        json.loads((bento / "src" / "calibration.json").read_text())
    )
    [dimension] = calibration.dimensions
    rows = [i for race in ("Black", "White", "Asian") for i in
            np.flatnonzero(cohort["race"] == race)[:4].tolist()]  # fmt: skip
    with served_bento(readmission_bento_home, tag) as candidate:
        for i in rows:
            body = {name: cohort[name][i].item() for name in FEATURES}
            groups = {name: str(column[i]) for name, column in outcomes.groups.items()}
            header = {"X-Equiguard-Groups": json.dumps(groups)}
            base = post(readmission_v2.url, body, {})
            expected = calibration.apply(
                np.array([base]), {dimension: np.array([groups[dimension]], dtype=object)}
            )[0]
            assert post(candidate.url, body, header) == pytest.approx(expected, abs=1e-12)
            # Without the sidecar's header, race (a context attribute) is unknown: unchanged.
            assert post(candidate.url, body, {}) == pytest.approx(base, abs=1e-12)
        black = rows[0]
        body = {name: cohort[name][black].item() for name in FEATURES}
        header = {"X-Equiguard-Groups": json.dumps({"race": "Black"})}
        assert post(candidate.url, body, header) != post(readmission_v2.url, body, {})


def test_the_runtime_serves_the_candidate_from_its_calibration_on_a_read_only_store(
    published: tuple[Run, Any], readmission_bento_home: Path, readmission_v2: BentoServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    """What a model pod does with the calibration ConfigMap: the document as a file, the
    base bento of a store it cannot write (the image's), a TMPDIR of its own."""
    run, (cohort, outcomes) = published
    tag = run.result["candidateRevision"]
    built = readmission_bento_home / "bentos" / "readmission" / tag.partition(":")[2]
    document = json.loads((built / "src" / "calibration.json").read_text())
    calibration_file = tmp_path / "calibration" / "calibration.json"
    calibration_file.parent.mkdir()
    calibration_file.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")))
    store = tmp_path / "image-store"
    shutil.copytree(readmission_bento_home, store, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if "-recal-" in n
                                                  or n.startswith("serve-")])  # fmt: skip
    for path in [store, *store.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    command = [sys.executable, "-m", "equiguard", "serve-calibrated",
               "--calibration", str(calibration_file), "--revision", tag]  # fmt: skip
    calibration = Calibration.from_dict(document)
    [dimension] = calibration.dimensions
    try:
        server = start_bento(store, tag, command=command, env={"TMPDIR": str(scratch)},
                             logs=tmp_path)  # fmt: skip
        try:
            for race in ("Black", "White"):
                i = int(np.flatnonzero(cohort["race"] == race)[0])
                body = {name: cohort[name][i].item() for name in FEATURES}
                groups = {name: str(column[i]) for name, column in outcomes.groups.items()}
                base = post(readmission_v2.url, body, {})
                expected = calibration.apply(
                    np.array([base]), {dimension: np.array([groups[dimension]], dtype=object)}
                )[0]
                header = {"X-Equiguard-Groups": json.dumps(groups)}
                assert post(server.url, body, header) == pytest.approx(expected, abs=1e-12)
        finally:
            server.stop()
        assert not (store / "bentos" / "readmission" / tag.partition(":")[2]).exists()
        # A document that is not the tag's calibration is refused before anything serves.
        other = "readmission:v2-recal-0000000000"
        refused = subprocess.run(
            [*command[:-1], other, "--bento-home", str(store)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 2 and f"not of {other}" in refused.stderr
    finally:
        for path in [store, *store.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o200)
