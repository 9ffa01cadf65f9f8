"""Every pod the chart or the operator creates passes the Pod Security "restricted" profile.

The checks follow the profile's definition (baseline plus restricted rules of
the "latest" version) field by field, plus the project's own rule of a
read-only root filesystem. The same profile is enforced for real by the API
server in tests/e2e/test_chart_install.py; this test names the field at fault
in milliseconds and without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.operator import manifests, recalibration_job
from helpers.chart import ALL_ON_VALUES, REPO, helm_or_skip, render


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_or_skip()


EXAMPLE = REPO / "examples" / "readmission" / "clinicalmodel.yaml"
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """Every way a pod spec breaks the restricted profile, as "field: reason"."""
    problems: list[str] = []
    pod_ctx = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"spec.{field}: must be unset or false")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"securityContext.sysctls: {sysctl['name']} is not a safe sysctl")
    problems += _context_problems("spec.securityContext", pod_ctx)

    containers = [
        (kind, container)
        for kind in ("initContainers", "containers", "ephemeralContainers")
        for container in pod.get(kind) or []
    ]
    if not containers:
        problems.append("spec.containers: none")
    for kind, container in containers:
        where = f"{kind}[{container['name']}].securityContext"
        ctx = container.get("securityContext") or {}
        problems += _context_problems(where, ctx)
        if ctx.get("privileged"):
            problems.append(f"{where}.privileged: must be false")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}.allowPrivilegeEscalation: must be false")
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}.capabilities.drop: must include ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{where}.capabilities.add: only NET_BIND_SERVICE is allowed")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}.readOnlyRootFilesystem: must be true")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            problems.append(f"{where}.runAsNonRoot: must be true here or on the pod")
        profile = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if profile not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}.seccompProfile.type: must be RuntimeDefault or Localhost")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{kind}[{container['name']}].ports: hostPort is not allowed")
    return problems


def _context_problems(where: str, ctx: Mapping[str, Any]) -> list[str]:
    problems = []
    if ctx.get("runAsUser") == 0:
        problems.append(f"{where}.runAsUser: must not be 0")
    if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where}.seccompProfile.type: must not be Unconfined")
    if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append(f"{where}.appArmorProfile.type: must not be Unconfined")
    selinux = ctx.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        problems.append(f"{where}.seLinuxOptions: only the container types are allowed")
    if ctx.get("procMount", "Default") != "Default":
        problems.append(f"{where}.procMount: must be Default")
    if (ctx.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}.windowsOptions.hostProcess: must be false")
    return problems


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] == "Pod":
            yield obj["metadata"]["name"], spec
        elif obj["kind"] == "CronJob":
            yield obj["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]
        elif "template" in spec:
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]


@pytest.mark.parametrize("values", [None, ALL_ON_VALUES], ids=["defaults", "all-on"])
def test_every_rendered_pod_passes_the_restricted_profile(helm: str, values: Path | None) -> None:
    objects = render(helm, *(["-f", str(values)] if values else []))
    pods = list(pod_specs(objects))
    assert pods, "the chart renders no pod template"
    for name, spec in pods:
        assert restricted_violations(spec) == [], name


def test_every_rendered_pod_mounts_a_writable_tmp(helm: str) -> None:
    for name, spec in pod_specs(render(helm)):
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for container in spec["containers"]:
            tmp = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{name}: /tmp is not an emptyDir"


def operator_built_pods() -> list[tuple[str, Mapping[str, Any]]]:
    """The pods the operator creates for the example model: the model server and a Job."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"] |= {"namespace": "clinical", "uid": "0c6f-example", "generation": 1}
    model = read_model(body)
    images = manifests.Images(sidecar="sidecar:test", job="operator:test", model="runtime:test")
    revision = manifests.Revision(bento="readmission:v1", image="runtime:test")
    objects = [
        manifests.build_deployment(model, revision, images, "0123"),
        recalibration_job.build_recalibration_job(model, revision, "tpr-gap-race", images),
    ]
    return list(pod_specs(objects))


def test_every_pod_the_operator_creates_passes_the_restricted_profile() -> None:
    pods = operator_built_pods()
    assert [name.split("/")[0] for name, _ in pods] == ["Deployment", "Job"]
    for name, spec in pods:
        assert restricted_violations(spec) == [], name


HOSTILE_POD = """
hostNetwork: true
securityContext: {runAsUser: 0, sysctls: [{name: kernel.msgmax, value: "1"}]}
volumes: [{name: root, hostPath: {path: /}}]
containers:
  - name: app
    ports: [{containerPort: 80, hostPort: 80}]
    securityContext:
      privileged: true
      capabilities: {add: [SYS_ADMIN]}
      seccompProfile: {type: Unconfined}
"""


def test_the_checker_names_each_field_a_hostile_pod_gets_wrong() -> None:
    # The check above is only as good as this function; a pod breaking every
    # rule must be reported on every rule.
    problems = restricted_violations(yaml.safe_load(HOSTILE_POD))
    fields = {problem.split(":")[0] for problem in problems}
    assert fields == {
        "spec.hostNetwork",
        "volume root",
        "securityContext.sysctls",
        "spec.securityContext.runAsUser",
        "containers[app].securityContext.seccompProfile.type",
        "containers[app].securityContext.privileged",
        "containers[app].securityContext.allowPrivilegeEscalation",
        "containers[app].securityContext.capabilities.drop",
        "containers[app].securityContext.capabilities.add",
        "containers[app].securityContext.readOnlyRootFilesystem",
        "containers[app].securityContext.runAsNonRoot",
        "containers[app].ports",
    }
