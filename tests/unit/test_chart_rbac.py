"""The chart grants the operator exactly the allowlist: least privilege, no wildcards.

tests/fixtures/operator-rbac-allowlist.yaml lists the permissions as
`kubectl auth can-i --list` prints them; here the rendered Roles are expanded
into the same form. tests/e2e/test_chart_install.py holds the live API server
to the same list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.contracts.records import DecisionRecord, build_decision
from equiguard.operator import alerts, handlers, manifests, recalibration_job
from helpers.chart import REPO, by_kind, helm_or_skip, render

ALLOWLIST = yaml.safe_load(
    (REPO / "tests" / "fixtures" / "operator-rbac-allowlist.yaml").read_text()
)
EXAMPLE = REPO / "examples" / "readmission" / "clinicalmodel.yaml"


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


def permissions(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    """Rules expanded into "<verb> <resource>[.<group>][/<subresource>]" strings."""
    expanded = set()
    for rule in rules:
        assert not rule.get("resourceNames"), "the allowlist has no per-name rules"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                base, _, subresource = resource.partition("/")
                name = f"{base}.{group}" if group else base
                name += f"/{subresource}" if subresource else ""
                expanded |= {f"{verb} {name}" for verb in rule["verbs"]}
    return expanded


def allowed(*sections: str) -> set[str]:
    return {permission for section in sections for permission in ALLOWLIST[section]}


def operator_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All but the recalibration Jobs' identity (tested on its own below)."""
    return [obj for obj in objects if component(obj) != "recalibration"]


def component(obj: Mapping[str, Any]) -> str:
    return str((obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component", ""))


def test_serving_every_namespace_grants_exactly_the_allowlist_cluster_wide(helm: str) -> None:
    objects = render(helm)
    (role,) = by_kind(objects, "ClusterRole")
    assert permissions(role["rules"]) == allowed("namespaced", "clusterWide")
    assert by_kind(objects, "Role") == []


def test_serving_listed_namespaces_grants_the_allowlist_there_and_nothing_cluster_wide(
    helm: str,
) -> None:
    objects = render(helm, "--set", "operator.watchNamespaces={ward-a,ward-b}")
    assert by_kind(objects, "ClusterRole") == []
    assert by_kind(objects, "ClusterRoleBinding") == []
    roles = by_kind(operator_objects(objects), "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["ward-a", "ward-b"]
    for role in roles:
        assert permissions(role["rules"]) == allowed("namespaced", "watchedNamespaces")


@pytest.mark.parametrize("watch", [[], ["--set", "operator.watchNamespaces={ward-a}"]])
def test_no_rule_uses_a_wildcard(helm: str, watch: list[str]) -> None:
    objects = render(helm, *watch)
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], rule
            assert "nonResourceURLs" not in rule


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "operator.watchNamespaces={ward-a}"],
        ["--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing"],
    ],
)
def test_bindings_grant_the_roles_to_the_operators_service_account(
    helm: str, values: list[str]
) -> None:
    objects = operator_objects(render(helm, *values, namespace="platform"))
    (deployment,) = by_kind(objects, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding")
    roles = {
        r["metadata"]["name"] for r in by_kind(objects, "ClusterRole") + by_kind(objects, "Role")
    }
    assert bindings
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": "platform"}
        ]
        assert binding["roleRef"]["name"] in roles
    created = [sa["metadata"]["name"] for sa in by_kind(objects, "ServiceAccount")]
    assert created == ([] if "serviceAccount.create=false" in values else [account])


def recalibration_identity(objects: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """The recalibration objects by namespace and kind."""
    found: dict[str, dict[str, list[Any]]] = {}
    for obj in objects:
        if component(obj) == "recalibration":
            namespace = found.setdefault(obj["metadata"]["namespace"], {})
            namespace.setdefault(obj["kind"], []).append(obj)
    return found


def test_recalibration_jobs_run_as_an_account_that_may_only_write_configmaps_where_models_are(
    helm: str,
) -> None:
    objects = render(helm, "--set", "operator.watchNamespaces={ward-a,ward-b}")
    (deployment,) = by_kind(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    (flag,) = [arg for arg in args if arg.startswith("--job-service-account=")]
    account = flag.partition("=")[2]
    identity = recalibration_identity(objects)
    assert sorted(identity) == ["ward-a", "ward-b"]
    for namespace, kinds in identity.items():
        assert sorted(kinds) == ["Role", "RoleBinding", "ServiceAccount"]
        assert [sa["metadata"]["name"] for sa in kinds["ServiceAccount"]] == [account]
        (role,) = kinds["Role"]
        assert permissions(role["rules"]) == allowed("recalibration")
        (binding,) = kinds["RoleBinding"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
            "name": role["metadata"]["name"],
        }  # fmt: skip
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        ]


def test_serving_every_namespace_creates_the_recalibration_identity_only_where_listed(
    helm: str,
) -> None:
    # Nothing cluster-wide: the namespaces holding models must be named.
    assert recalibration_identity(render(helm)) == {}
    listed = render(helm, "--set", "recalibration.namespaces={clinical}")
    assert sorted(recalibration_identity(listed)) == ["clinical"]
    assert [component(role) for role in by_kind(listed, "ClusterRole")] == ["operator"]


def test_the_recalibration_account_name_reaches_the_operator(helm: str) -> None:
    objects = render(
        helm, "--set", "operator.watchNamespaces={ward-a}",
        "--set", "recalibration.serviceAccount.name=recal",
        "--set", "recalibration.serviceAccount.create=false",
    )  # fmt: skip
    (deployment,) = by_kind(objects, "Deployment")
    assert (
        "--job-service-account=recal"
        in (deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    )
    kinds = recalibration_identity(objects)["ward-a"]
    assert sorted(kinds) == ["Role", "RoleBinding"]
    assert kinds["RoleBinding"][0]["subjects"][0]["name"] == "recal"


def test_rbac_create_false_renders_no_role_or_binding(helm: str) -> None:
    objects = render(helm, "--set", "rbac.create=false")
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert by_kind(objects, kind) == []


def built_children() -> list[dict[str, Any]]:
    """Every kind of object the operator's builders produce for the example model."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"] |= {"namespace": "clinical", "uid": "0c6f-example", "generation": 1}
    model = read_model(body)
    images = manifests.Images(sidecar="sidecar:test", job="operator:test", model="runtime:test")
    revision = manifests.Revision(bento="readmission:v1", image="runtime:test")
    record = DecisionRecord(decision="Rollback", reason="RollbackTriggered", message="m",
                            identity=("readmission:v1",))  # fmt: skip
    return [
        manifests.build_configmap(model),
        manifests.build_service(model),
        manifests.build_deployment(model, revision, images, "0123"),
        recalibration_job.build_recalibration_job(model, revision, "tpr-gap-race", images),
        alerts.build_prometheus_rule(model),
        build_decision(model, record, datetime(2026, 1, 1, tzinfo=UTC)),
    ]


PLURALS = {"ConfigMap": "configmaps", "Service": "services", "Deployment": "deployments",
           "Job": "jobs", "PrometheusRule": "prometheusrules",
           "EquityDecision": "equitydecisions"}  # fmt: skip


def test_the_allowlist_lets_the_operator_create_every_kind_it_builds() -> None:
    for child in built_children():
        group = child["apiVersion"].rpartition("/")[0]
        resource = PLURALS[child["kind"]] + (f".{group}" if group else "")
        assert f"create {resource}" in ALLOWLIST["namespaced"], child["kind"]


def kopf_selectors() -> dict[str, set[str]]:
    """Resources the operator's kopf handlers serve, by kind of handler."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, SimpleNamespace(tick=5.0))  # type: ignore[arg-type]
    # kopf keeps its handler lists private; these names are stable across 1.3x-1.4x.
    found: dict[str, set[str]] = {}
    for kind in ("_watching", "_changing", "_spawning", "_indexing"):
        for handler in getattr(registry, kind).get_all_handlers():
            selector = handler.selector
            name = f"{selector.any_name}.{selector.group}" if selector.group else selector.any_name
            found.setdefault(kind, set()).add(name)
    return found


def test_the_allowlist_lets_kopf_watch_everything_the_handlers_serve() -> None:
    selectors = kopf_selectors()
    for resource in set().union(*selectors.values()):
        for verb in ("list", "watch"):
            assert f"{verb} {resource}" in ALLOWLIST["namespaced"], f"{verb} {resource}"


def test_the_allowlist_lets_kopf_keep_its_finalizer_and_status_on_what_it_changes() -> None:
    selectors = kopf_selectors()
    for resource in selectors["_changing"] | selectors.get("_spawning", set()):
        assert f"patch {resource}" in ALLOWLIST["namespaced"], resource
        assert f"patch {resource}/status" in ALLOWLIST["namespaced"], resource
