"""Faults between the operator and the real API server of the local control plane.

`equiguard operator` runs as a process of the test, watching the test's
namespace through a TCP proxy on loopback (tests/helpers/faults.py) that its
kubeconfig names instead of the API server. The model's pods are stand-ins:
Pod objects marked ready on 127.0.0.2 and 127.0.0.3, never scheduled (the
model's placement matches no node), with stand-in sidecars answering
/v1/stats there, so these faults need no node and no image. Each test drives
its scenario to states of the API server (records, status, generations), with
a deadline only against a hang.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from equiguard.contracts.status import parse_time
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.kube import Kube
from helpers.bento import free_port
from helpers.faults import LoopbackProxy, StatsPods, api_address, proxied_kubeconfig
from helpers.kube import TEST_NAMESPACE_LABELS, Kubectl
from helpers.unavailable import unavailable
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
EQUIGUARD = str(Path(sys.executable).with_name("equiguard"))
GROUP, VERSION = "equiguard.io", "v1alpha1"
TOKEN = "fault-outcome-token"
MODEL = "readmission-risk"
V1, V2, V3 = "readmission:v1", "readmission:v2", "readmission:v3"
DEADLINE_SECONDS = 240.0
OUTAGE_SECONDS = 180.0


@pytest.fixture(scope="module")
def kubeconfig() -> str:
    path = os.environ.get("KUBECONFIG")
    if not path or not Path(path).exists():
        unavailable("no local control plane: run `make cluster-up` and export its KUBECONFIG")
    return path


@pytest.fixture(scope="module")
def api_client(kubeconfig: str) -> client.ApiClient:
    config.load_kube_config(kubeconfig)
    api = client.ApiClient()
    client.VersionApi(api).get_code()  # fails loudly if the server is down
    Kubectl(kubeconfig)("apply", "-f", str(REPO / "crds"))
    Kubectl(kubeconfig)(
        "wait", "--for=condition=Established", "--timeout=30s",
        "crd/clinicalmodels.equiguard.io", "crd/equitydecisions.equiguard.io",
        "crd/kopfpeerings.kopf.dev",
    )  # fmt: skip
    return api


@pytest.fixture
def namespace(api_client: client.ApiClient, kubeconfig: str) -> Iterator[str]:
    name = f"f-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=TEST_NAMESPACE_LABELS))
    )
    kubectl = Kubectl(kubeconfig)
    kubectl("create", "-n", name, "-f", "-", input=json.dumps(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "equiguard"}}
    ))  # fmt: skip
    kubectl("create", "secret", "generic", "-n", name, "readmission-outcomes-token",
            f"--from-literal=token={TOKEN}")  # fmt: skip
    yield name
    # Models first, their finalizers released with no operator left to do it.
    kubectl.release_model_finalizers(name)
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def proxy(kubeconfig: str) -> Iterator[LoopbackProxy]:
    proxy = LoopbackProxy(api_address(kubeconfig))
    proxy.up()
    yield proxy
    proxy.down()


class Operator:
    """`equiguard operator` for one namespace, as a child process of the test."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path, priority: int = 0) -> None:
        command = [
            EQUIGUARD, "operator", "--namespace", namespace, "--tick", "1",
            "--peering-lifetime", "10", "--stats-timeout", "5", "--priority", str(priority),
            "--metrics-port", "0", "--liveness", f"http://127.0.0.1:{free_port()}/healthz",
        ]  # fmt: skip
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "KUBECONFIG": kubeconfig},
            )  # fmt: skip

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def statistics(body: dict[str, Any], black_tpr: float) -> dict[str, Any]:
    """One pod's statistics: Black patients' TPR `black_tpr`, the others' 0.9."""
    spec = parse_model(body)
    layout = CellLayout.from_spec(spec.subgroups)
    race: list[str] = []
    scores: list[float] = []
    for group in ("White", "Black"):
        caught = round(1000 * (black_tpr if group == "Black" else 0.9))
        race += [group] * 1000
        scores += [0.9] * caught + [0.1] * (1000 - caught)
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(
        layout.assign({"race": race}, len(race)), np.array(scores), np.ones(len(race), dtype=int)
    )
    return stats.to_dict()


def manifest(bento: str, action: str = "Rollback", keep_records: bool = False) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"] = {"name": MODEL}
    spec = body["spec"]
    spec["model"]["bento"] = bento
    spec["subgroups"] = {
        "attributes": [
            {"name": "race", "source": {"context": "race"}, "values": ["White", "Black"]}
        ]
    }
    spec["slos"] = [
        {
            "name": "tpr-gap-race", "metric": "tpr", "attribute": "race",
            "comparison": "maxGap", "threshold": "0.10", "window": "1h", "minSamples": 50,
            "confidence": "0.95", "consecutiveBreaches": 2, "action": action,
        }
    ]  # fmt: skip
    spec["evaluation"] = {
        "interval": "5s", "qualificationPeriod": "10s", "cooldown": "1h", "maxActionsPerDay": 3,
    }  # fmt: skip
    # No node runs the model's own pods: the stand-ins are the only ready ones.
    spec["placement"] = {"nodeSelector": {"equiguard.io/stand-in-node": "none"}}
    if action == "Recalibrate":
        spec["changeControl"] = {"methods": ["platt"]}
    if keep_records:
        spec["decisionRecords"] = {"keepOnDelete": True}
    return body


class Cluster:
    """The test namespace's objects, read as plain JSON with the test's own credentials."""

    def __init__(self, api: client.ApiClient, kubectl: Kubectl, namespace: str) -> None:
        self.kube, self.kubectl, self.namespace = Kube(api), kubectl, namespace

    def apply(self, body: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(body))

    def model(self) -> dict[str, Any]:
        found = self.kube.get(f"{GROUP}/{VERSION}", "ClinicalModel", self.namespace, MODEL)
        assert found is not None
        return found

    def status(self) -> dict[str, Any]:
        return dict(self.model().get("status") or {})

    def records(self) -> list[dict[str, Any]]:
        return self.kube.list(f"{GROUP}/{VERSION}", "EquityDecision", self.namespace, {})

    def decisions(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["spec"]["decision"] == kind]

    def jobs(self) -> list[dict[str, Any]]:
        return self.kube.list("batch/v1", "Job", self.namespace, {})

    def wait(self, what: str, condition: Callable[[], bool], operator: Operator) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not condition():
            assert operator.process.poll() is None, f"the operator died:\n{operator.tail()}"
            assert time.monotonic() < deadline, f"gave up waiting: {what}\n{operator.tail()}"
            time.sleep(0.5)


def evaluated_since(cluster: Cluster, moment: str) -> Callable[[], bool]:
    return lambda: cluster.status().get("lastEvaluationTime", "") > moment


def serving_a_qualified_v1_then_v2(
    cluster: Cluster, pods: StatsPods, operator: Operator, tprs: dict[str, float]
) -> None:
    """v1 serves and qualifies (Met), then the spec names v2, which serves (Met)."""
    pods.place(V1)
    cluster.apply(manifest(V1))
    cluster.wait(
        "v1 qualified",
        lambda: any(
            r.get("qualifiedAt") for r in cluster.status().get("revisions", [])
            if r["revision"] == V1
        ),
        operator,
    )  # fmt: skip
    pods.place(V2)
    cluster.apply(manifest(V2))
    cluster.wait(
        "v2 served and Met",
        lambda: (
            cluster.status().get("servingRevision") == V2
            and [s["verdict"] for s in cluster.status().get("slos", [])] == ["Met"]
            and all(s["revision"] == V2 for s in cluster.status().get("slos", []))
        ),
        operator,
    )
    assert tprs  # the caller changes them from here on


@pytest.fixture
def scene(
    api_client: client.ApiClient,
    kubeconfig: str,
    namespace: str,
    proxy: LoopbackProxy,
    tmp_path: Path,
) -> Iterator[tuple[Cluster, StatsPods, Callable[..., Operator], dict[str, float]]]:
    cluster = Cluster(api_client, Kubectl(kubeconfig), namespace)
    tprs = {V1: 0.9, V2: 0.9, V3: 0.9}  # Black patients' TPR per revision: Met at first
    body = manifest(V1)
    pods = StatsPods(api_client, namespace, MODEL, lambda revision: statistics(
        body, tprs.get(revision, 0.9)
    ))  # fmt: skip
    pods.serve()
    through_proxy = proxied_kubeconfig(kubeconfig, proxy, tmp_path)
    started: list[Operator] = []

    def operator(priority: int = 0, direct: bool = False) -> Operator:
        log = tmp_path / f"operator-{len(started)}.log"
        process = Operator(kubeconfig if direct else through_proxy, namespace, log, priority)
        started.append(process)
        return process

    yield cluster, pods, operator, tprs
    for process in started:
        process.stop()
    pods.close()


def test_an_api_server_away_for_three_minutes_acts_only_on_fresh_data_once_it_is_back(
    scene: tuple[Cluster, StatsPods, Callable[..., Operator], dict[str, float]],
    proxy: LoopbackProxy,
) -> None:
    cluster, pods, start_operator, tprs = scene
    operator = start_operator()
    serving_a_qualified_v1_then_v2(cluster, pods, operator, tprs)
    proxy.down()
    asked_before = len(pods.served)
    tprs[V2] = 0.4  # v2 violates from now on; nobody can read it while the API is away
    time.sleep(OUTAGE_SECONDS)  # the fault's length, not a wait for a result
    assert len(pods.served) == asked_before, "statistics were read without the API server"
    assert operator.process.poll() is None, f"the operator stopped:\n{operator.tail()}"
    back = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    proxy.up()
    cluster.wait("the rollback", lambda: cluster.status().get("servingRevision") == V1, operator)
    (rollback,) = cluster.decisions("Rollback")
    assert rollback["metadata"]["creationTimestamp"] >= back + "Z"
    last = cluster.status()["lastEvaluationTime"]
    for _ in range(3):  # three more evaluations change nothing
        cluster.wait("another evaluation", evaluated_since(cluster, last), operator)
        last = cluster.status()["lastEvaluationTime"]
    assert len(cluster.decisions("Rollback")) == 1
    actions = [entry["action"] for entry in cluster.status()["actions"]]
    assert actions == ["Rollback"]


def test_edits_are_reconciled_by_the_timer_while_the_watch_is_silent(
    scene: tuple[Cluster, StatsPods, Callable[..., Operator], dict[str, float]],
    proxy: LoopbackProxy,
) -> None:
    """The first evaluation that starts after the edit serves it: kopf would replace the
    silent watch only after its inactivity timeout (70 s), a dozen evaluations later."""
    cluster, pods, start_operator, _ = scene
    operator = start_operator()
    pods.place(V1)
    cluster.apply(manifest(V1))
    cluster.wait("a first evaluation", lambda: bool(cluster.status().get("slos")), operator)
    assert proxy.silence() > 0
    pods.place(V3)
    edited = datetime.now(UTC)
    cluster.apply(manifest(V3))  # an edit the silent watch never delivers
    generation = cluster.model()["metadata"]["generation"]
    first: dict[str, Any] = {}

    def evaluated_after_the_edit() -> bool:
        status = cluster.status()
        if parse_time(status.get("lastEvaluationTime", "1970-01-01T00:00:00Z")) <= edited:
            return False
        first.update(status)
        return True

    cluster.wait("an evaluation after the edit", evaluated_after_the_edit, operator)
    assert (first["observedGeneration"], first["servingRevision"]) == (generation, V3)
    deployment = cluster.kube.get("apps/v1", "Deployment", cluster.namespace, MODEL)
    assert deployment is not None
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["equiguard.io/revision"] == V3


def resumed(operator: Operator) -> int:
    """How often kopf's peering let this operator act (it starts paused)."""
    return operator.log.read_text(errors="replace").count("Resuming operations after the pause")


def test_of_two_operator_replicas_one_acts_and_the_other_takes_over_when_it_is_killed(
    scene: tuple[Cluster, StatsPods, Callable[..., Operator], dict[str, float]],
) -> None:
    cluster, pods, start_operator, tprs = scene
    active = start_operator(priority=100, direct=True)
    cluster.wait("the active operator", lambda: resumed(active) == 1, active)
    # Started after it, the standby finds it in the peering and stays paused.
    standby = start_operator(priority=0, direct=True)
    cluster.wait(
        "the standby logged in",
        lambda: "Initial authentication has finished" in standby.log.read_text(errors="replace"),
        standby,
    )
    serving_a_qualified_v1_then_v2(cluster, pods, active, tprs)
    tprs[V2] = 0.4
    cluster.wait("the rollback", lambda: cluster.status().get("servingRevision") == V1, active)
    paused = standby.log.read_text(errors="replace")
    # Each record is logged by the operator that created it: all by the active one.
    assert f"{cluster.namespace}/{MODEL}:" in active.log.read_text(errors="replace")
    assert f"{cluster.namespace}/{MODEL}:" not in paused
    assert resumed(standby) == 0
    active.kill()
    cluster.wait("the standby taking over", lambda: resumed(standby) == 1, standby)
    last = cluster.status()["lastEvaluationTime"]
    cluster.wait("the standby's evaluation", evaluated_since(cluster, last), standby)
    last = cluster.status()["lastEvaluationTime"]
    cluster.wait("another evaluation", evaluated_since(cluster, last), standby)
    assert len(cluster.decisions("Rollback")) == 1
    assert [entry["action"] for entry in cluster.status()["actions"]] == ["Rollback"]
    assert cluster.jobs() == []


def children(cluster: Cluster) -> list[str]:
    """Which of the model's children exist."""
    return [
        kind
        for api_version, kind, name in (
            ("apps/v1", "Deployment", MODEL), ("v1", "Service", MODEL),
            ("v1", "ConfigMap", f"{MODEL}-sidecar"),
        )
        if cluster.kube.get(api_version, kind, cluster.namespace, name) is not None
    ]  # fmt: skip


@pytest.mark.parametrize("keep_records", [False, True])
def test_a_deleted_model_takes_its_children_and_its_records_as_declared(
    scene: tuple[Cluster, StatsPods, Callable[..., Operator], dict[str, float]],
    keep_records: bool,
) -> None:
    cluster, pods, start_operator, _ = scene
    operator = start_operator(direct=True)
    pods.place(V1)
    cluster.apply(manifest(V1, keep_records=keep_records))
    cluster.wait("a decision record", lambda: bool(cluster.records()), operator)
    assert children(cluster) == ["Deployment", "Service", "ConfigMap"]
    records = {r["metadata"]["name"] for r in cluster.records()}
    cluster.kubectl("delete", "clm", "-n", cluster.namespace, MODEL, "--timeout=60s")
    cluster.wait("the children collected", lambda: children(cluster) == [], operator)
    if keep_records:
        assert {r["metadata"]["name"] for r in cluster.records()} >= records
    else:
        cluster.wait("the records collected", lambda: cluster.records() == [], operator)
