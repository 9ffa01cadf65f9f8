"""The chart lints, renders, refuses bad values and ships the repository's CRDs."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts import names
from equiguard.operator import main as operator_main
from helpers.chart import (
    ALL_ON_VALUES,
    CHART,
    KUBE_VERSION,
    MONITORING_API,
    REPO,
    by_kind,
    helm_or_skip,
    render,
    run_helm,
)


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


@pytest.mark.parametrize("values", [None, ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_chart_lints_cleanly(helm: str, values: Path | None) -> None:
    args = ["-f", str(values)] if values else []
    result = run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("operator.watchNamespace={a}", "additional properties 'watchNamespace' not allowed"),
        ("serviceMonitor.enable=true", "additional properties 'enable' not allowed"),
        ("rbacCreate=false", "additional properties 'rbacCreate' not allowed"),
        ("operator.logFormat=xml", "operator/logFormat"),
        ("image.digest=latest", "image/digest"),
        ("modelRuntime.image.digest=latest", "modelRuntime/image/digest"),
        ("modelRuntime.imag.tag=1", "additional properties 'imag' not allowed"),
        ("operator.healthPort=80", "operator/healthPort"),
    ],
)
def test_a_misspelt_or_invalid_value_is_refused_with_its_path(
    helm: str, setting: str, message: str
) -> None:
    result = run_helm(
        helm, "template", "eg", str(CHART), "--kube-version", KUBE_VERSION, "--set", setting
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_chart_refuses_clusters_older_than_its_kube_version(helm: str) -> None:
    result = run_helm(helm, "template", "eg", str(CHART), "--kube-version", "v1.28.0")
    assert result.returncode != 0
    assert "kubeVersion" in result.stderr


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    # Helm installs charts/equiguard/crds/; the operator's tests apply crds/.
    # They must be one and the same. Fix: cp crds/*.yaml charts/equiguard/crds/
    repo_crds = {path.name: path.read_bytes() for path in (REPO / "crds").glob("*.yaml")}
    chart_crds = {path.name: path.read_bytes() for path in (CHART / "crds").glob("*.yaml")}
    assert repo_crds, "crds/ is empty"
    assert sorted(chart_crds) == sorted(repo_crds)
    for name, content in repo_crds.items():
        assert chart_crds[name] == content, f"charts/equiguard/crds/{name} differs from crds/{name}"


def test_operator_runs_one_instance_with_recreate_and_a_kopf_liveness_probe(helm: str) -> None:
    (deployment,) = by_kind(render(helm), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container([deployment])
    assert container["command"][:2] == ["equiguard", "operator"]
    probe = container["livenessProbe"]["httpGet"]
    liveness_args = [arg for arg in container["args"] if arg.startswith("--liveness=")]
    assert liveness_args == [f"--liveness=http://$(POD_IP):8080{probe['path']}"]
    assert probe["port"] == "health"
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_every_object_carries_the_recommended_labels(helm: str) -> None:
    for obj in render(helm, "-f", str(ALL_ON_VALUES), "--api-versions", MONITORING_API):
        labels = obj["metadata"].get("labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                    "helm.sh/chart"):  # fmt: skip
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


@pytest.mark.parametrize(
    ("values", "operator_image", "sidecar_image", "model_image"),
    [
        (
            [],
            "ghcr.io/equiguard/operator:0.1.0",
            "ghcr.io/equiguard/sidecar:0.1.0",
            "ghcr.io/equiguard/model-runtime:0.1.0",
        ),
        (
            ["-f", str(ALL_ON_VALUES)],
            "registry.example.org/equiguard/operator@sha256:" + "0123456789abcdef" * 4,
            "registry.example.org/equiguard/sidecar@sha256:" + "fedcba9876543210" * 4,
            "registry.example.org/equiguard/model-runtime@sha256:" + "0011223344556677" * 4,
        ),
        (
            [
                "--set",
                "modelRuntime.image.repository=registry.example.org/runtime,"
                "modelRuntime.image.tag=2.0",
            ],
            "ghcr.io/equiguard/operator:0.1.0",
            "ghcr.io/equiguard/sidecar:0.1.0",
            "registry.example.org/runtime:2.0",
        ),
    ],
    ids=["defaults-follow-app-version", "configured-digest-wins-over-tag", "configured-tag"],
)
def test_operator_is_told_the_images_it_puts_into_pods(
    helm: str, values: list[str], operator_image: str, sidecar_image: str, model_image: str
) -> None:
    container = operator_container(render(helm, *values))
    assert container["image"] == operator_image
    assert f"--sidecar-image={sidecar_image}" in container["args"]
    # Models whose spec names no spec.model.image run on this one.
    assert f"--model-image={model_image}" in container["args"]
    # Recalibration Jobs run `equiguard recalibrate` from the model runtime's image,
    # which holds the base bentos they calibrate.
    assert f"--job-image={model_image}" in container["args"]


def test_the_charts_default_images_are_the_operators_own_defaults(helm: str) -> None:
    # Installed by the chart or run by hand, a model without an image gets the same runtime.
    args = operator_container(render(helm))["args"]
    assert f"--sidecar-image={operator_main.DEFAULT_IMAGE}" in args
    assert f"--model-image={operator_main.DEFAULT_MODEL_IMAGE}" in args


def test_operator_arguments_are_ones_its_command_line_accepts(helm: str) -> None:
    for values in ([], ["-f", str(ALL_ON_VALUES)]):
        args = operator_container(render(helm, *values))["args"]
        parsed = operator_main.parse_args([arg.replace("$(POD_IP)", "10.1.2.3") for arg in args])
        assert parsed.liveness.startswith("http://10.1.2.3:")
        assert parsed.metrics_address == "10.1.2.3"


def test_watching_selected_namespaces_passes_each_to_the_operator(helm: str) -> None:
    container = operator_container(render(helm, "-f", str(ALL_ON_VALUES)))
    assert "--namespace=clinical-models" in container["args"]
    assert "--namespace=clinical-research" in container["args"]
    assert "--all-namespaces" not in container["args"]
    default = operator_container(render(helm))
    assert "--all-namespaces" in default["args"]


def test_network_policies_are_opt_in(helm: str) -> None:
    assert by_kind(render(helm), "NetworkPolicy") == []


def test_model_pods_accept_traffic_only_on_the_sidecar_port(helm: str) -> None:
    policies = by_kind(render(helm, "-f", str(ALL_ON_VALUES)), "NetworkPolicy")
    model_policies = [p for p in policies if p["metadata"]["name"].endswith("-model-pods")]
    assert sorted(p["metadata"]["namespace"] for p in model_policies) == [
        "clinical-models",
        "clinical-research",
    ]
    for policy in model_policies:
        selector = policy["spec"]["podSelector"]["matchLabels"]
        # The labels the operator really puts on model pods select them.
        assert selector.items() <= names.common_labels("any", "model-server").items()
        ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
        assert ports == {names.SIDECAR_PORT}


def test_operator_accepts_only_prometheus_and_reaches_only_the_api_server_and_sidecars(
    helm: str,
) -> None:
    policies = by_kind(render(helm, "-f", str(ALL_ON_VALUES)), "NetworkPolicy")
    (operator_policy,) = [p for p in policies if p["metadata"]["name"].endswith("-operator")]
    spec = operator_policy["spec"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"port": 9091, "protocol": "TCP"}]  # metrics, from Prometheus
    egress_ports = {port["port"] for rule in spec["egress"] for port in rule["ports"]}
    assert egress_ports == {443, 6443, names.SIDECAR_PORT}


def test_all_on_values_turn_every_switch_on() -> None:
    # A new boolean in values.yaml must be exercised by the all-on file too.
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    all_on = yaml.safe_load(ALL_ON_VALUES.read_text())

    def switches(tree: dict[str, Any], prefix: str = "") -> set[str]:
        found = set()
        for key, value in tree.items():
            if isinstance(value, bool):
                found.add(prefix + key)
            elif isinstance(value, dict):
                found |= switches(value, f"{prefix}{key}.")
        return found

    def lookup(tree: Any, path: str) -> object:
        for part in path.split("."):
            tree = tree[part]
        return tree

    for switch in switches(defaults):
        assert lookup(all_on, switch) is True, switch


def test_packaged_chart_holds_the_crds_schema_and_dashboard(helm: str, tmp_path: Path) -> None:
    result = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("equiguard-*.tgz")
    with tarfile.open(package) as archive:
        members = {name.partition("/")[2] for name in archive.getnames()}
    crds = {f"crds/{path.name}" for path in (REPO / "crds").glob("*.yaml")}
    assert (
        crds | {"values.schema.json", "dashboards/equiguard.json", "templates/NOTES.txt"} <= members
    )
    assert not any(name.startswith("ci/") for name in members)
