"""The early warning on the real cluster: a shifted stream warns before any of its
outcomes arrive, and the labelled verdict, once they do, bears the warning out.

Revision v1 qualifies on outcomes (scored v1 records, as in the rollback test)
and is the reference. Revision v2 scores Black patients lower (it learnt from
prior-year cost, which the cohort under-records for them): from its scores
alone, Black's flag rate falls away from the reference's and the estimated TPR
gap opens. The warning is raised while no v2 outcome exists; it rolls nothing
back. Then v2's outcomes arrive, the labelled TPR gap is Violated, and the
warning is recorded as borne out.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.kube import Kubectl
from kubernetes import client
from test_operator_harness import (
    Models,
    OperatorProcess,
    cohort,
    manifest,
    outcomes,
    predictions,
    wait_for,
)
from test_operator_rollback import BALANCED, ROWS, V1, V2, _records, _seconds, _v1_outcomes

pytest_plugins = ["test_operator_harness"]
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

EARLY_WARNING = {
    "window": "1h",
    "referenceWindow": "1h",
    "signals": ["scoreDistribution", "flagRate", "subgroupMix"],
    "estimates": [{"slo": "tpr-gap-race"}],
    "action": "Alert",
}


@pytest.fixture
def models(api_client: client.ApiClient, kubectl: Kubectl, namespace: str) -> Models:
    return Models(api_client, kubectl, namespace)


def test_a_shifted_stream_warns_before_its_outcomes_and_the_labels_bear_it_out(
    operator: OperatorProcess,
    models: Models,
    bentos: Path,
    tmp_path: Path,
) -> None:
    models.apply(manifest(V1, action="Alert", earlyWarning=EARLY_WARNING))
    _v1_outcomes(models, bentos, tmp_path, 11, "v1-")
    wait_for(lambda: models.status().get("lastGoodRevision") == V1, 180, "v1 to qualify")
    assert models.status().get("earlyWarning", {}).get("state") != "Warning"
    assert not _records(models, "EarlyWarning")

    models.patch_spec("readmission-risk", {"model": {"bento": V2}})
    ips = models.serving(V2)
    stream = cohort(ROWS, 12, BALANCED)
    predictions(ips, stream, "v2-")

    # From the scores alone, before any outcome of v2 exists.
    raised = wait_for(
        lambda: _records(models, "EarlyWarning"),
        90,
        "an EarlyWarning record",
        explain=lambda: f"status.earlyWarning: {models.status().get('earlyWarning')}",
    )[0]
    warned = models.status()["earlyWarning"]
    assert warned["state"] == "Warning" and warned["revision"] == V2
    assert warned["reference"]["revision"] == V1
    assert warned["reference"]["source"] == "LastGoodRevision"
    fired = {(s["signal"], s["group"]) for s in warned["signals"]}
    assert ("flagRate", "Black") in fired, warned["signals"]
    assert models.condition("EarlyWarning")["status"] == "True"
    assert "EarlyWarningRaised" in models.event_reasons()
    spec = raised["spec"]
    assert spec["revision"] == V2
    assert ("flagRate", "Black") in {
        (s["signal"], s["group"]) for s in spec["earlyWarning"]["signals"]
    }
    # A warning never acts: v2 still serves and nothing was rolled back.
    assert models.status()["servingRevision"] == V2
    assert not _records(models, "Rollback")
    # Shares and their intervals leave, never the counts behind them.
    assert all(not {"n", "count", "counts"} & set(signal) for signal in warned["signals"])

    outcomes_sent = _seconds(raised["spec"]["time"])
    outcomes(ips, stream, "v2-")
    resolved = wait_for(
        lambda: _records(models, "EarlyWarningResolved"), 120, "an EarlyWarningResolved record"
    )[0]
    assert _seconds(resolved["spec"]["time"]) > outcomes_sent
    assert resolved["spec"]["earlyWarning"]["borneOut"] is True
    assert resolved["spec"]["slo"] == "tpr-gap-race" and resolved["spec"]["verdict"] == "Violated"
    tally = models.status()["earlyWarning"]["warnings"]
    assert (tally["raised"], tally["decided"], tally["borneOut"]) == (1, 1, 1)
    assert float(tally["precision"]) == 1.0
