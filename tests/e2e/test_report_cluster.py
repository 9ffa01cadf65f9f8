"""`equiguard report`, `status` and `decisions` against the real API server.

A ClinicalModel and its decision records are stored in a fresh namespace (the
status written through the status subresource, as the operator writes it);
the command, run as a user runs it, reads them back and writes the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.kube import Kubectl
from helpers.report_story import manifest, story

REPO = Path(__file__).resolve().parents[2]
EQUIGUARD = str(Path(sys.executable).with_name("equiguard"))
SCORED = REPO / "examples/readmission/scored-records.csv"
MODEL = "readmission-risk"


@pytest.fixture(scope="module")
def crds(kubeconfig: str) -> None:
    """The project's CRDs, installed (idempotently) and established."""
    kubectl = Kubectl(kubeconfig)
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/clinicalmodels.equiguard.io",
        "crd/equitydecisions.equiguard.io",
    )


def equiguard(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EQUIGUARD, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )


def report(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    return equiguard(kubeconfig, "report", *args)


@pytest.fixture
def recorded(kubectl: Kubectl, namespace: str, crds: None) -> dict[str, Any]:
    """The readmission model's recorded history, stored on the API server."""
    body = manifest(MODEL, namespace)
    kubectl("apply", "-f", "-", input=json.dumps(body))
    uid = json.loads(kubectl("get", "clm", MODEL, "-n", namespace, "-o", "json").stdout)[
        "metadata"
    ]["uid"]
    history = story(MODEL, namespace, uid=uid)
    kubectl(
        "patch",
        "clm",
        MODEL,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": history.model["status"]}),
    )
    # As the operator writes them: fields the schema does not know are dropped with a warning.
    kubectl(
        "create",
        "--validate=warn",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": history.decisions}),
    )
    stored = json.loads(kubectl("get", "equitydecisions", "-n", namespace, "-o", "json").stdout)
    return {
        "names": sorted(d["metadata"]["name"] for d in history.decisions),
        "stored": stored["items"],
    }


@pytest.mark.cluster
def test_report_reads_the_model_and_its_records_from_the_api_server(
    kubeconfig: str, namespace: str, recorded: dict[str, Any], tmp_path: Path
) -> None:
    run = report(
        kubeconfig,
        MODEL,
        "-n",
        namespace,
        "-o",
        str(tmp_path),
        "--development-records",
        str(SCORED),
    )
    assert run.returncode == 0, run.stderr
    html_path, json_path = run.stdout.split()
    assert html_path == str(tmp_path / f"{MODEL}-equity-report.html")
    content = json.loads(Path(json_path).read_text())
    assert content["model"]["namespace"] == namespace
    assert sorted(d["record"] for d in content["decisions"]) == recorded["names"]
    assert [r["revision"] for r in content["revisions"]] == ["readmission:v1", "readmission:v2"]
    assert content["state"]["servingRevision"] == "readmission:v1"
    race = next(s for s in content["slos"] if s["name"] == "tpr-gap-race")
    assert [e["verdict"] for e in race["evaluations"]] == ["Met", "Violated", "Met", "Met"]
    assert content["development"]["rows"] == 3000
    shown = [v for k, v in _pairs(content) if k in ("n", "rows")]
    assert all(v is None or v == 0 or v > 10 for v in shown)
    html = Path(html_path).read_text()
    assert f"Equity report: {MODEL}" in html
    assert all(name in html for name in recorded["names"])


@pytest.mark.cluster
def test_report_shows_every_group_value_the_records_keep_that_is_safe_to_show(
    kubeconfig: str, namespace: str, recorded: dict[str, Any], tmp_path: Path
) -> None:
    run = report(kubeconfig, MODEL, "-n", namespace, "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    content = json.loads((tmp_path / f"{MODEL}-equity-report.json").read_text())
    shown = {
        (s["name"], e["time"], g["group"]): g
        for s in content["slos"]
        for e in s["evaluations"]
        for g in e["groups"]
    }
    stored_groups = shown_values = 0
    for record in recorded["stored"]:
        evidence = record["spec"].get("evidence", {})
        for group in evidence.get("groups", []):
            key = (record["spec"].get("slo"), record["spec"]["time"], group["group"])
            if key not in shown:
                continue  # another record of the same evaluation is plotted
            stored_groups += 1
            if group.get("suppressed") or not isinstance(group.get("n"), int):
                assert shown[key]["estimate"] is None and shown[key]["n"] is None
            elif not shown[key]["hidden"]:
                assert shown[key]["n"] == group["n"]
                if "estimate" in group:
                    assert shown[key]["estimate"] == pytest.approx(float(group["estimate"]))
                    shown_values += 1
    assert stored_groups > 0
    assert shown_values > 0


@pytest.mark.cluster
def test_status_and_decisions_read_the_same_model_from_the_api_server(
    kubeconfig: str, namespace: str, recorded: dict[str, Any]
) -> None:
    status = equiguard(kubeconfig, "status", "-n", namespace)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1].startswith(MODEL) and "readmission:v1 (spec readmission:v2)" in lines[1]
    assert "Violated" in next(line for line in lines if "calibration-payer" in line)
    listed = equiguard(kubeconfig, "decisions", MODEL, "-n", namespace, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    names = [d["name"] for d in json.loads(listed.stdout)["decisions"]]
    assert sorted(names) == recorded["names"]
    assert json.loads(listed.stdout)["decisions"][0]["decision"] == "Recalibrate"


@pytest.mark.cluster
def test_decision_records_keep_each_groups_count(recorded: dict[str, Any]) -> None:
    # The report shows no value whose count it cannot check: the schema must keep n.
    groups = [
        g
        for r in recorded["stored"]
        for g in r["spec"].get("evidence", {}).get("groups", [])
        if not g.get("suppressed")
    ]
    assert groups and all("n" in g for g in groups)


@pytest.mark.cluster
def test_report_names_a_missing_model_and_its_namespace(
    kubeconfig: str, namespace: str, crds: None, tmp_path: Path
) -> None:
    run = report(kubeconfig, "no-such-model", "-n", namespace, "-o", str(tmp_path))
    assert run.returncode == 1
    assert f"no ClinicalModel 'no-such-model' in namespace '{namespace}'" in run.stderr
    assert list(tmp_path.iterdir()) == []


def _pairs(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(k, v) for k, v in value.items()] + [p for v in value.values() for p in _pairs(v)]
    if isinstance(value, list):
        return [p for item in value for p in _pairs(item)]
    return []
