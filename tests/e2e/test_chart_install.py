"""The chart on the real control plane: upgrade, restricted namespaces, RBAC, uninstall.

One release serves one models namespace (so it never touches other tests'
ClinicalModels); both namespaces enforce the Pod Security "restricted"
profile, so the API server itself refuses any pod of the chart or of the
operator that breaks it. The tests run in file order on that release: install
the previous chart version (tests/fixtures/charts), reconcile the example,
upgrade to the chart in the repository, then its operator, RBAC, a model
without an image, uninstall.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.contracts.recalibration_result import RecalibrationResult, configmap
from equiguard.contracts.records import DecisionRecord, build_decision
from helpers.chart import CHART, KUBE_VERSION, REPO, helm_or_skip, remove_release, run_helm
from helpers.kube import Kubectl
from helpers.node import tag_image

pytestmark = pytest.mark.cluster

ALLOWLIST = yaml.safe_load((REPO / "tests/fixtures/operator-rbac-allowlist.yaml").read_text())
EXAMPLE = REPO / "examples" / "readmission" / "clinicalmodel.yaml"
# The chart as released before this one, packaged (see its README).
PREVIOUS_CHART = REPO / "tests" / "fixtures" / "charts" / "equiguard-0.1.0.tgz"
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
# Set on upgrade (0.1.0 has no such value): models naming no image run on it.
# A name of its own for the runtime image the node holds (see `release`), so a
# model on it is told apart from one on the image its spec names.
MODEL_RUNTIME = "registry.example.org/equiguard/model-runtime"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
SHIPPED_RUNTIME = f"ghcr.io/equiguard/model-runtime:{APP_VERSION}"
MODEL = "readmission-risk"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
T = TypeVar("T")


def wait_for(what: str, seconds: float, probe: Callable[[], T | None]) -> T:
    """Polls `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(1)


@dataclass
class Release:
    name: str
    namespace: str  # the operator's
    models: str  # the namespace it serves
    helm: str
    kubectl: Kubectl
    values: list[str]

    def helm_run(self, *args: str) -> str:
        result = run_helm(
            self.helm, *args, "--namespace", self.namespace,
            "--kubeconfig", self.kubectl.kubeconfig,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", "-o", "json", *args).stdout)

    def operator_pods(self) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component=operator"
        pods: list[dict[str, Any]] = self.get("pods", "-n", self.namespace, "-l", selector)["items"]
        return [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]

    def model(self) -> dict[str, Any]:
        model: dict[str, Any] = self.get("clinicalmodel", MODEL, "-n", self.models)
        return model

    def model_pods(self) -> list[dict[str, Any]]:
        """The example model's pods, terminating ones included."""
        selector = f"equiguard.io/model={MODEL}"
        pods: list[dict[str, Any]] = self.get("pods", "-n", self.models, "-l", selector)["items"]
        return pods


def running_and_ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod.get("status", {}).get("phase") == "Running" and all(s["ready"] for s in statuses)


def condition(model: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in model.get("status", {}).get("conditions") or []:
        if found["type"] == kind:
            return dict(found)
    return {}


@pytest.fixture(scope="module")
def release(kubeconfig: str) -> Iterator[Release]:
    helm = helm_or_skip()
    kubectl = Kubectl(kubeconfig)
    suffix = uuid.uuid4().hex[:8]
    name, operator_ns, models_ns = f"eg{suffix}", f"eg-op-{suffix}", f"eg-models-{suffix}"
    for namespace in (operator_ns, models_ns):
        kubectl.create_namespace(namespace)
        kubectl("label", "namespace", namespace, RESTRICTED)
    values = [
        "--set", f"operator.watchNamespaces={{{models_ns}}}",
        # A peering of its own: other operators on this cluster must not pause it.
        "--set", f"operator.peeringName=eg-{suffix}",
    ]  # fmt: skip
    tag_image(SHIPPED_RUNTIME, f"{MODEL_RUNTIME}:{APP_VERSION}")
    installed = Release(name, operator_ns, models_ns, helm, kubectl, values)
    try:
        installed.helm_run(
            "install", name, str(PREVIOUS_CHART), *values, "--wait", "--timeout", "120s"
        )
        yield installed
    finally:
        remove_release(helm, kubectl, name, operator_ns, models_ns)


def test_the_previous_chart_reconciles_the_example_model_in_a_restricted_namespace(
    release: Release,
) -> None:
    release.kubectl("create", "secret", "generic", "readmission-outcomes-token",
                    "-n", release.models, f"--from-literal=token={uuid.uuid4().hex}")  # fmt: skip
    release.kubectl("apply", "-n", release.models, "-f", str(EXAMPLE))
    model = wait_for("the ClinicalModel to be Ready", 300, lambda: ready_model(release))
    assert condition(model, "Ready")["observedGeneration"] == model["metadata"]["generation"]
    # The model's pods were admitted under the restricted profile and run.
    pods = release.model_pods()
    assert pods and all(running_and_ready(pod) for pod in pods)


def evaluated_since(release: Release, started: datetime) -> dict[str, Any] | None:
    """The model, once its operator has evaluated it after `started`."""
    model = release.model()
    last = model.get("status", {}).get("lastEvaluationTime", "")
    if last and datetime.fromisoformat(last.replace("Z", "+00:00")) > started:
        return model
    return None


def snapshot(release: Release) -> dict[str, Any]:
    """What an upgrade must leave alone: the model's pods, rollout, Jobs, decision records."""
    model = release.model()
    deployment = release.get("deployment", MODEL, "-n", release.models)
    pods = release.model_pods()
    records = release.get("equitydecisions", "-n", release.models)["items"]
    return {
        "deployment generation": deployment["metadata"]["generation"],
        "observed generation": deployment["status"]["observedGeneration"],
        "pod template hashes": sorted(
            {pod["metadata"]["labels"]["pod-template-hash"] for pod in pods}
        ),
        "pods": sorted(pod["metadata"]["uid"] for pod in pods),
        "jobs": sorted(
            j["metadata"]["name"] for j in release.get("jobs", "-n", release.models)["items"]
        ),
        "rollbacks": sorted(
            r["metadata"]["name"] for r in records if r["spec"]["decision"] == "Rollback"
        ),
        "decision records": sorted(r["metadata"]["name"] for r in records),
        "serving revision": model["status"]["servingRevision"],
        "revisions": [(r["revision"], r["image"]) for r in model["status"]["revisions"]],
        "deployment revision": deployment["metadata"]["annotations"]["equiguard.io/revision"],
    }


def test_upgrade_from_the_previous_chart_keeps_models_ready_without_new_jobs_or_records(
    release: Release,
) -> None:
    before = snapshot(release)
    assert before["jobs"] == [] and before["rollbacks"] == []
    (old,) = release.operator_pods()
    assert old["metadata"]["labels"]["helm.sh/chart"] == "equiguard-0.1.0"
    # As docs/install.md says: Helm never upgrades crds/, so the CRDs go first
    # (--force-conflicts: Helm, or an earlier client-side apply, owns their fields).
    release.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    # The new chart changes the pod template: the operator pod is replaced (Recreate).
    release.helm_run(
        "upgrade", release.name, str(CHART), *release.values,
        "--set", f"modelRuntime.image.repository={MODEL_RUNTIME}",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    new = wait_for(
        "the new operator pod to run",
        120,
        lambda: next(
            (p for p in release.operator_pods()
             if p["metadata"]["uid"] != old["metadata"]["uid"] and running_and_ready(p)),
            None,
        ),
    )  # fmt: skip
    assert f"--model-image={MODEL_RUNTIME}:{APP_VERSION}" in new["spec"]["containers"][0]["args"]

    # Recreate stopped the old operator before the new one ran: from here on,
    # every evaluation is the new operator's.
    started = datetime.now(UTC).replace(microsecond=0)
    model = wait_for(
        "an evaluation by the new operator", 300, lambda: evaluated_since(release, started)
    )
    assert condition(model, "Ready")["status"] == "True"
    assert snapshot(release) == before
    assert new["status"]["containerStatuses"][0]["restartCount"] == 0


def test_operator_runs_from_the_chart_in_a_restricted_namespace(release: Release) -> None:
    namespace = release.get("namespace", release.namespace)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (pod,) = wait_for("the operator pod", 60, lambda: release.operator_pods() or None)
    wait_for("the operator to run", 60, lambda: running_and_ready(release.operator_pods()[0]))
    # The upgraded release runs the chart in the repository.
    assert pod["metadata"]["labels"]["helm.sh/chart"] == f"equiguard-{CHART_VERSION}"
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["equiguard", "operator"]
    # kopf's liveness endpoint answers on the pod's address, as the probe asks it.
    ip = release.operator_pods()[0]["status"]["podIP"]
    port = container["livenessProbe"]["httpGet"]["port"]
    number = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    with urllib.request.urlopen(f"http://{ip}:{number}/healthz", timeout=5) as response:
        assert response.status == 200
    # Nothing it asks of the API server is refused: a refused call is retried
    # for a minute, and a refused scan at start keeps the operator paused.
    logs = release.kubectl("logs", "-n", release.namespace, pod["metadata"]["name"])
    assert "forbidden" not in logs.stdout.lower()


def test_operator_repairs_a_deleted_child_with_the_charts_rbac(release: Release) -> None:
    # Drift repair takes the operator's widest path: watching its children,
    # reading their model, applying again.
    old = release.get("service", MODEL, "-n", release.models)["metadata"]["uid"]
    release.kubectl("delete", "service", MODEL, "-n", release.models)

    def recreated() -> str | None:
        found = release.kubectl("get", "service", MODEL, "-n", release.models,
                                "-o", "jsonpath={.metadata.uid}", check=False)  # fmt: skip
        return found.stdout if found.returncode == 0 and found.stdout not in ("", old) else None

    wait_for("the Service to be recreated", 60, recreated)


def ready_model(release: Release) -> dict[str, Any] | None:
    model = release.model()
    return model if condition(model, "Ready").get("status") == "True" else None


def can_i_list(release: Release, account: str, namespace: str) -> set[str]:
    """`kubectl auth can-i --list` as a set of "<verb> <resource>[ <name>]"."""
    subject = f"--as=system:serviceaccount:{account}"
    table = release.kubectl("auth", "can-i", "--list", "--no-headers", subject, "-n", namespace)
    permissions = set()
    for line in table.stdout.splitlines():
        match = re.match(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
        assert match, f"unexpected can-i line: {line!r}"
        resource, urls, names, verbs = match.groups()
        targets = [resource] if resource else urls.split()
        for target in targets:
            for verb in verbs.split():
                permissions |= {f"{verb} {target} {n}" for n in names.split()} or {
                    f"{verb} {target}"
                }
    return permissions


def granted(release: Release, account: str, namespace: str) -> set[str]:
    """What `account` may do in `namespace` beyond a ServiceAccount without any binding."""
    baseline = can_i_list(release, f"{release.namespace}:default", namespace)
    return can_i_list(release, account, namespace) - baseline


def allowed(*sections: str) -> set[str]:
    return {permission for section in sections for permission in ALLOWLIST[section]}


def test_operator_may_do_exactly_the_allowlist_in_its_namespace_and_nothing_elsewhere(
    release: Release,
) -> None:
    account = f"{release.namespace}:{release.name}-equiguard-operator"
    assert granted(release, account, release.models) == allowed("namespaced", "watchedNamespaces")
    assert granted(release, account, release.namespace) == set()
    assert granted(release, account, "default") == set()


def test_recalibration_jobs_identity_may_only_write_configmaps_in_the_models_namespace(
    release: Release,
) -> None:
    account = f"{release.name}-equiguard-recalibration"
    (pod,) = release.operator_pods()
    assert f"--job-service-account={account}" in pod["spec"]["containers"][0]["args"]
    release.get("serviceaccount", account, "-n", release.models)
    subject = f"{release.models}:{account}"
    assert granted(release, subject, release.models) == allowed("recalibration")
    assert granted(release, subject, release.namespace) == set()
    assert granted(release, subject, "default") == set()


def test_recalibration_jobs_identity_can_write_and_rewrite_its_result(release: Release) -> None:
    # What the Job's result writer does, as the Job's ServiceAccount:
    # create the result ConfigMap, and replace it when a retried pod writes again.
    impersonate = (
        f"--as=system:serviceaccount:{release.models}:{release.name}-equiguard-recalibration"
    )
    result = RecalibrationResult("Refused", "", "", "readmission:v1")
    body = configmap("rbac-check-result", MODEL, result, None, None)
    body["metadata"]["namespace"] = release.models
    release.kubectl("create", impersonate, "-f", "-", input=json.dumps(body))
    body["data"] = {"outcome": "Published"}
    release.kubectl("replace", impersonate, "-f", "-", input=json.dumps(body))
    # It cannot read them (the operator does), nor delete them.
    for verb in ("get", "delete"):
        refused = release.kubectl(verb, impersonate, "configmap", "rbac-check-result",
                                  "-n", release.models, check=False)  # fmt: skip
        assert refused.returncode != 0 and "forbidden" in refused.stderr, refused.stderr
    written = release.get("configmap", "rbac-check-result", "-n", release.models)
    assert written["data"] == {"outcome": "Published"}
    release.kubectl("delete", "configmap", "rbac-check-result", "-n", release.models)


def test_serving_every_namespace_grants_exactly_the_allowlist_everywhere(
    release: Release, tmp_path: Path
) -> None:
    # Only the RBAC of a cluster-wide release: an operator serving every
    # namespace would act on other tests' models.
    name = f"{release.name}-cw"
    rendered = run_helm(
        release.helm, "template", name, str(CHART), "--namespace", release.namespace,
        "--kube-version", KUBE_VERSION,
        "-s", "templates/serviceaccount.yaml", "-s", "templates/rbac.yaml",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    manifest = tmp_path / "cluster-wide-rbac.yaml"
    manifest.write_text(rendered.stdout)
    release.kubectl("apply", "-f", str(manifest))
    try:
        account = f"{release.namespace}:{name}-equiguard-operator"
        for namespace in (release.models, "default"):
            assert granted(release, account, namespace) == allowed("namespaced", "clusterWide")
    finally:
        release.kubectl("delete", "-f", str(manifest), "--wait=false")


def test_a_model_without_an_image_runs_on_the_charts_model_runtime(release: Release) -> None:
    release.kubectl("patch", "clinicalmodel", MODEL, "-n", release.models, "--type=json",
                    "-p", '[{"op": "remove", "path": "/spec/model/image"}]')  # fmt: skip
    image = f"{MODEL_RUNTIME}:{APP_VERSION}"

    def served_on_the_runtime() -> dict[str, Any] | None:
        model = release.model()
        ready = condition(model, "Ready")
        revisions = {r["revision"]: r["image"] for r in model["status"].get("revisions", [])}
        return model if (
            ready.get("status") == "True"
            and ready.get("observedGeneration") == model["metadata"]["generation"]
            and revisions.get(model["spec"]["model"]["bento"]) == image
        ) else None  # fmt: skip

    wait_for("the model to be served on the chart's runtime", 300, served_on_the_runtime)
    pods = release.model_pods()
    running = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    assert running and all(running_and_ready(pod) for pod in running)
    for pod in running:
        images = {c["name"]: c["image"] for c in pod["spec"]["containers"]}
        assert images["model"] == image


def test_uninstall_keeps_the_crds_the_models_and_the_decision_records(release: Release) -> None:
    # A decision record as the operator writes them (built by its own builder).
    body = release.model()
    record = DecisionRecord(decision="Alert", reason="SLOViolated", identity=("uninstall-test",),
                            message="Recorded before the chart was uninstalled.")  # fmt: skip
    manifest = build_decision(read_model(body), record, datetime.now(UTC))
    manifest["metadata"]["namespace"] = release.models
    release.kubectl("create", "-f", "-", input=json.dumps(manifest))
    # Helm never owns crds/: they are not part of the release it deletes.
    assert "kind: CustomResourceDefinition" not in release.helm_run("get", "manifest", release.name)

    release.helm_run("uninstall", release.name, "--wait", "--timeout", "120s")

    gone = release.kubectl("get", "deployment", "-n", release.namespace, "-o", "name").stdout
    assert gone.strip() == ""
    for crd in ("clinicalmodels.equiguard.io", "equitydecisions.equiguard.io",
                "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):  # fmt: skip
        release.kubectl("get", "crd", crd)
    assert release.model()["metadata"]["uid"] == body["metadata"]["uid"]
    release.kubectl("get", "equitydecision", manifest["metadata"]["name"], "-n", release.models)


def test_installing_the_chart_anew_serves_the_models_left_behind(release: Release) -> None:
    # `helm install` of the repository's chart (the release above began at 0.1.0):
    # admitted in the restricted namespace, and its operator takes the models up.
    started = datetime.now(UTC).replace(microsecond=0)
    release.helm_run(
        "install", release.name, str(CHART), *release.values,
        "--set", f"modelRuntime.image.repository={MODEL_RUNTIME}",
        "--wait", "--timeout", "120s",
    )  # fmt: skip
    (pod,) = release.operator_pods()
    assert pod["metadata"]["labels"]["helm.sh/chart"] == f"equiguard-{CHART_VERSION}"

    model = wait_for(
        "an evaluation by the new release's operator",
        300,
        lambda: evaluated_since(release, started),
    )
    assert condition(model, "Ready")["status"] == "True"
