"""`equiguard recalibrate` refuses without publishing, and says why, with distinct exit codes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.recalibration_result import RecalibrationResult
from equiguard.recalibration import main as recalibration_main
from equiguard.recalibration.main import (
    EXIT_FAILED,
    EXIT_REFUSED,
    EXIT_USAGE,
    fit_configmap,
    main,
)
from helpers.recalibration import (
    EVEN_RACE_MIX,
    NOW,
    cohort_outcomes,
    example_manifest,
    write_store,
)

UNMEETABLE = {
    "name": "tpr-floor-sex", "metric": "tpr", "attribute": "sex", "comparison": "floor",
    "threshold": "0.95", "window": "7d", "minSamples": 50, "confidence": "0.95",
    "consecutiveBreaches": 2, "action": "Alert",
}  # fmt: skip


def setup(tmp_path: Path, manifest: dict[str, Any], *, passing: bool = True) -> list[str]:
    # A passing candidate must demonstrate every SLO: many outcomes in every race group.
    if passing:
        _, outcomes = cohort_outcomes(manifest, 150_000, seed=31, race_mix=EVEN_RACE_MIX)
    else:
        _, outcomes = cohort_outcomes(manifest, 20_000, seed=31)
    write_store(tmp_path / "predictions.db", outcomes, "readmission:v1")
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    return [
        "--model", str(tmp_path / "model.yaml"), "--store", str(tmp_path / "predictions.db"),
        "--out", str(tmp_path / "out"), "--until", str(NOW), "--window", "7d",
        "--bento-home", str(tmp_path / "bentoml"),
    ]  # fmt: skip


def test_a_refused_candidate_publishes_nothing_and_the_assessment_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = example_manifest({"methods": ["platt"]})
    manifest["spec"]["slos"].append(copy.deepcopy(UNMEETABLE))
    assert main(setup(tmp_path, manifest)) == EXIT_REFUSED
    assert not (tmp_path / "bentoml").exists()
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["outcome"] == "Refused" and result["reason"] == "CriteriaNotMet"
    assert result["candidateRevision"] == "" and "tpr-floor-sex" in result["message"]
    assessment = json.loads((tmp_path / "out" / "assessment.json").read_text())
    assert assessment["format"] == "equiguard.recalibration-assessment/v1"
    [candidate] = assessment["candidates"]
    assert candidate["held"] is False and candidate["calibration"]["maps"].keys() == {"Black"}
    assert "**Refused** (CriteriaNotMet)" in (tmp_path / "out" / "summary.md").read_text()
    assert "refused, nothing published (CriteriaNotMet)" in capsys.readouterr().out


def test_the_assessment_never_shows_a_count_from_one_to_ten(tmp_path: Path) -> None:
    manifest = example_manifest({"methods": ["platt", "isotonic"]})
    manifest["spec"]["slos"].append(copy.deepcopy(UNMEETABLE))
    assert main(setup(tmp_path, manifest, passing=False)) == EXIT_REFUSED
    assessment = json.loads((tmp_path / "out" / "assessment.json").read_text())
    counts = ("n", "positives", "negatives", "tp", "fp", "tn", "fn", "predictedPositives",
              "predictedNegatives")  # fmt: skip
    blocks = [assessment["before"]] + [c["after"] for c in assessment["candidates"] if c["after"]]
    shown = [
        block[name]
        for report in blocks
        for groups in report["metrics"].values()
        for block in groups.values()
        for name in counts
    ]
    assert shown and not [n for n in shown if n is not None and 1 <= n <= 10]
    suppressed = [g for r in blocks for d in r["metrics"].values() for g in d.values()
                  if g["suppressed"]]  # fmt: skip
    assert suppressed  # the example's intersections have groups that small


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        ({"methods": ["platt"]}, ["--method", "isotonic"], "not allowed by spec.changeControl"),
        (None, [], "spec.changeControl: is required"),
        ({"methods": ["platt"]}, ["--slo", "no-such-slo"], "--slo no-such-slo"),
        (
            {"methods": ["platt"]},
            ["--slo", "tpr-gap-race", "--dimension", "sex"],
            "the SLO tpr-gap-race is about race",
        ),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any] | None,
    extra: list[str], message: str,
) -> None:  # fmt: skip
    manifest = example_manifest({"methods": ["platt"]})
    if change is None:
        del manifest["spec"]["changeControl"]
        manifest["spec"]["slos"][0]["action"] = "Alert"
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    argv = ["--model", str(tmp_path / "model.yaml"), "--store", str(tmp_path / "p.db"),
            "--out", str(tmp_path / "out"), *extra]  # fmt: skip
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_unreadable_store_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(example_manifest()))
    argv = ["--model", str(tmp_path / "model.yaml"), "--store", str(tmp_path / "absent.db"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == EXIT_FAILED
    assert "cannot open the SQLite store" in capsys.readouterr().err


def test_an_assessment_too_large_for_a_configmap_keeps_its_criteria_and_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = example_manifest({"methods": ["platt"]})
    manifest["spec"]["slos"].append(copy.deepcopy(UNMEETABLE))
    assert main(setup(tmp_path, manifest)) == EXIT_REFUSED
    document = json.loads((tmp_path / "out" / "assessment.json").read_text())
    result = RecalibrationResult("Refused", "CriteriaNotMet", "m", "readmission:v1",
                                 assessment=json.dumps(document), summary="...")  # fmt: skip
    assert fit_configmap(result, document) == result
    monkeypatch.setattr(recalibration_main, "CONFIGMAP_BUDGET", 10_000)
    trimmed = json.loads(fit_configmap(result, document).assessment)
    assert "metrics" not in trimmed["before"] and "metrics" not in trimmed["candidates"][0]["after"]
    assert trimmed["candidates"][0]["criteria"] == document["candidates"][0]["criteria"]
    assert trimmed["before"]["slos"] == document["before"]["slos"]
    assert "trimmed" in trimmed


def test_a_passing_candidate_without_a_bento_store_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    argv = setup(tmp_path, example_manifest({"methods": ["platt"]}))
    assert main(argv[: argv.index("--bento-home")]) == EXIT_USAGE
    assert "no BentoML store" in capsys.readouterr().err
