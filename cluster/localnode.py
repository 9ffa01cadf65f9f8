"""Local node runtime: the kubelet of one Node, running containers as local processes.

It registers a Node, renews its Lease and runs every container of the pods bound
to that Node as a process group on this machine, each pod on a loopback IP of
its own (127.1.x.y). The project's virtualenv stands in for every image. What it
honours, and how it maps the container world onto processes, is described in
docs/local-node.md.

Usage: python cluster/localnode.py --kubeconfig K --node-name N --state-dir DIR
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import logging
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
# (kind, name) -> the object's data as bytes per key, or None when it does not exist.
Refs = Mapping[tuple[str, str], Mapping[str, bytes] | None]
# (audience, expirationSeconds) -> a service-account token for the pod.
Tokens = Mapping[tuple[str, int], str]

log = logging.getLogger("localnode")

HOST_IP = "127.0.0.1"
MARKER_ENV = "EQUIGUARD_LOCALNODE_CONTAINER"  # marks our processes, to find stale ones safely
TICK_SECONDS = 0.5  # how often a pod worker looks at its processes
HEARTBEAT_SECONDS = 10.0
VOLUME_REFRESH_SECONDS = 60.0
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 1.0, 60.0, 60.0
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHUTDOWN_GRACE_SECONDS = 5.0  # cluster/down.sh allows the runtime 10 s in all


class ConfigError(Exception):
    """A container cannot be set up as its spec asks; the message is shown in its status."""


# ---------------------------------------------------------------- time


def timestamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------- pod IPs


def next_pod_ip(in_use: set[str], last: str | None) -> str:
    """The first free address after `last` in 127.1.0.1-127.1.255.254, wrapping around.

    Going round the range rather than taking the lowest free address keeps a
    deleted pod's address from being handed out again at once.
    """
    size = 256 * 256
    start = 1
    if last is not None:
        _, _, third, fourth = (int(part) for part in last.split("."))
        start = third * 256 + fourth + 1
    for step in range(size):
        index = (start + step) % size
        if index % 256 in (0, 255):  # keep clear of addresses that look like network/broadcast
            continue
        ip = f"127.1.{index // 256}.{index % 256}"
        if ip not in in_use:
            return ip
    raise RuntimeError("no free pod IP left in 127.1.0.0/16")


def listening_ips(proc_net_tcp: str) -> set[str]:
    """IPv4 addresses with a listening TCP socket, from the text of /proc/net/tcp."""
    found = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
            address = bytes.fromhex(fields[1].split(":")[0])[::-1]  # little-endian hex
            found.add(".".join(str(octet) for octet in address))
    return found


class PodIPs:
    """Pod IP allocations, shared by the pod workers.

    Addresses something on this machine already listens on are skipped: another
    cluster's local node may be running pods in the same range.
    """

    def __init__(self, busy: Callable[[], set[str]]) -> None:
        self._busy = busy
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._last: str | None = None

    def assign(self, uid: str, wanted: str | None) -> str:
        """Keeps `wanted` (the address a pod already has) when given, else allocates one."""
        with self._lock:
            if uid not in self._by_uid:
                taken = self._busy() | set(self._by_uid.values())
                ip = wanted or next_pod_ip(taken, self._last)
                self._by_uid[uid] = ip
                self._last = ip if wanted is None else self._last
            return self._by_uid[uid]

    def release(self, uid: str) -> None:
        with self._lock:
            self._by_uid.pop(uid, None)


# ---------------------------------------------------------------- environment and paths


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ escapes, others stay."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env.get(name, text[i : end + 1]))
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def mount_table(container: Obj, volume_dirs: Mapping[str, Path]) -> list[tuple[str, str]]:
    """(mountPath, folder standing in for it) for each volumeMount, longest mountPath first."""
    pairs = []
    for mount in container.get("volumeMounts", []):
        mount_path = mount["mountPath"].rstrip("/")
        if not mount_path or mount["name"] not in volume_dirs:
            continue
        real = volume_dirs[mount["name"]] / mount.get("subPath", "")
        pairs.append((mount_path, str(real).rstrip("/")))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def translate_paths(text: str, mounts: Sequence[tuple[str, str]]) -> str:
    """Replaces each mountPath that begins a path in `text` with the folder standing in for it.

    A mountPath counts only as a whole path prefix: `/data` is rewritten in
    `/data/x.db` and `--dir=/data`, not in `/database` or `/srv/data`.
    """
    if not mounts:
        return text
    alternatives = "|".join(re.escape(mount_path) for mount_path, _ in mounts)
    pattern = re.compile(rf"(?<![\w.\-/])({alternatives})(?![\w.\-])")
    folders = dict(mounts)
    return pattern.sub(lambda match: folders[match.group(1)], text)


def field_value(pod: Obj, path: str, pod_ip: str) -> str:
    """A downward-API fieldRef of the pod."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": HOST_IP,
        "status.hostIPs": HOST_IP,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted(meta.get(path.split(".")[1], {}).items())
        return "\n".join(f"{key}={json.dumps(value)}" for key, value in items)
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    raise ConfigError(f"fieldRef {path} is not supported by the local node")


def _lookup(refs: Refs, kind: str, ref: Obj) -> Mapping[str, bytes] | None:
    """The data of a referenced ConfigMap or Secret; None when it is optional and absent."""
    data = refs.get((kind, ref["name"]))
    if data is None and not ref.get("optional", False):
        raise ConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    return data


def _selected(refs: Refs, kind: str, ref: Obj, key: str, namespace: str) -> bytes | None:
    """The value of one key of a referenced ConfigMap or Secret; None when optional and absent."""
    data = _lookup(refs, kind, ref)
    if data is None:
        return None
    if key not in data:
        if ref.get("optional", False):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref['name']}")
    return data[key]


def spec_env(
    pod: Obj, container: Obj, pod_ip: str, refs: Refs, base: Mapping[str, str]
) -> dict[str, str]:
    """The variables the container spec defines (envFrom, then env), expanded as Kubernetes does."""
    namespace = pod["metadata"]["namespace"]
    defined: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            data = _lookup(refs, kind, source[key]) if key in source else None
            prefix = source.get("prefix", "")
            defined.update({prefix + name: value.decode() for name, value in (data or {}).items()})
    for var in container.get("env", []):
        value_from = var.get("valueFrom")
        if value_from is None:
            defined[var["name"]] = expand(var.get("value", ""), {**base, **defined})
            continue
        if "fieldRef" in value_from:
            defined[var["name"]] = field_value(pod, value_from["fieldRef"]["fieldPath"], pod_ip)
            continue
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in value_from:
                ref = value_from[key]
                value = _selected(refs, kind, ref, ref["key"], namespace)
                if value is not None:
                    defined[var["name"]] = value.decode()
                break
        else:
            raise ConfigError(
                f"env {var['name']}: only fieldRef, configMapKeyRef and secretKeyRef are supported"
            )
    return defined


def container_argv(container: Obj, env: Mapping[str, str]) -> list[str]:
    """command followed by args, expanded; the virtualenv image has no ENTRYPOINT or CMD."""
    argv = [expand(part, env) for part in container.get("command", []) + container.get("args", [])]
    if not argv:
        raise ConfigError(
            f"container {container['name']} sets neither command nor args; the local node "
            "runs commands from the project's virtualenv and has no image entrypoint"
        )
    return argv


def referenced_objects(pod: Obj) -> set[tuple[str, str]]:
    """Every ConfigMap and Secret the pod's env and volumes name."""
    found: set[tuple[str, str]] = set()
    spec = pod["spec"]
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        for source in container.get("envFrom", []):
            found |= {
                (kind, source[key]["name"])
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef"))
                if key in source
            }
        for var in container.get("env", []):
            value_from = var.get("valueFrom", {})
            found |= {
                (kind, value_from[key]["name"])
                for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef"))
                if key in value_from
            }
    for volume in spec.get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            if "configMap" in source:
                found.add(("ConfigMap", source["configMap"]["name"]))
            if "secret" in source:
                found.add(
                    (
                        "Secret",
                        source["secret"].get("secretName") or source["secret"].get("name", ""),
                    )
                )
    return found


def token_requests(pod: Obj) -> set[tuple[str, int]]:
    """(audience, expirationSeconds) of each serviceAccountToken projection."""
    return {
        (
            source["serviceAccountToken"].get("audience", ""),
            int(source["serviceAccountToken"].get("expirationSeconds", 3600)),
        )
        for volume in pod["spec"].get("volumes", [])
        for source in volume.get("projected", {}).get("sources", [])
        if "serviceAccountToken" in source
    }


# ---------------------------------------------------------------- volumes

FOLDER_VOLUMES = ("emptyDir", "hostPath")
FILE_VOLUMES = ("configMap", "secret", "downwardAPI", "projected")


def _object_files(refs: Refs, kind: str, ref: Obj, namespace: str) -> dict[str, bytes]:
    data = _lookup(refs, kind, ref)
    if data is None:
        return {}
    items = ref.get("items")
    if not items:
        return dict(data)
    files = {}
    for item in items:
        value = _selected(refs, kind, ref, item["key"], namespace)
        if value is not None:
            files[item["path"]] = value
    return files


def volume_files(
    volume: Obj, pod: Obj, pod_ip: str, refs: Refs, tokens: Tokens
) -> dict[str, bytes]:
    """The files of a configMap, secret, downwardAPI or projected volume, by relative path."""
    namespace = pod["metadata"]["namespace"]
    files: dict[str, bytes] = {}
    sources = volume["projected"].get("sources", []) if "projected" in volume else [volume]
    for source in sources:
        if "configMap" in source:
            files.update(_object_files(refs, "ConfigMap", source["configMap"], namespace))
        if "secret" in source:
            secret = dict(source["secret"])
            secret.setdefault("name", secret.get("secretName", ""))
            files.update(_object_files(refs, "Secret", secret, namespace))
        if "downwardAPI" in source:
            for item in source["downwardAPI"].get("items", []):
                if "fieldRef" not in item:
                    raise ConfigError(
                        f"downwardAPI item {item['path']}: only fieldRef is supported"
                    )
                files[item["path"]] = field_value(
                    pod, item["fieldRef"]["fieldPath"], pod_ip
                ).encode()
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            key = (token.get("audience", ""), int(token.get("expirationSeconds", 3600)))
            files[token["path"]] = tokens[key].encode()
    return files


def volume_kind(volume: Obj) -> str:
    for kind in FOLDER_VOLUMES + FILE_VOLUMES:
        if kind in volume:
            return kind
    kinds = ", ".join(FOLDER_VOLUMES + FILE_VOLUMES)
    raise ConfigError(f"volume {volume['name']}: the local node supports only {kinds} volumes")


def pod_kubeconfig(server: str, ca_data: bytes, token_file: Path) -> str:
    """A kubeconfig for a pod's processes: the API server with the pod's service-account token."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_data).decode(),
                },
            }
        ],
        "users": [{"name": "pod", "user": {"tokenFile": str(token_file)}}],
        "contexts": [{"name": "pod", "context": {"cluster": "local", "user": "pod"}}],
        "current-context": "pod",
    }
    return json.dumps(kubeconfig, indent=2)


# ---------------------------------------------------------------- container lifecycle decisions


@dataclass(frozen=True)
class Termination:
    exit_code: int
    reason: str
    started_at: datetime
    finished_at: datetime
    message: str = ""


@dataclass(frozen=True)
class ContainerState:
    """What one container is doing, as its status reports it.

    Running when `running_since` is set; finished for good when `terminated`
    is set; otherwise waiting (to start, or to restart after `last_termination`).
    """

    running_since: datetime | None = None
    terminated: Termination | None = None
    last_termination: Termination | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    restart_count: int = 0
    pid: int | None = None
    ready: bool = False
    started: bool = False


def is_sidecar(container: Obj) -> bool:
    """An init container with restartPolicy Always runs beside the app containers."""
    return container.get("restartPolicy") == "Always"


def init_done(container: Obj, state: ContainerState) -> bool:
    """Whether the next init container (or the app containers) may start after this one."""
    if is_sidecar(container):
        return state.started
    return state.terminated is not None and state.terminated.exit_code == 0


def should_restart(pod_policy: str, container: Obj, is_init: bool, exit_code: int) -> bool:
    if is_init and is_sidecar(container):
        return True
    if is_init and pod_policy == "Always":
        pod_policy = "OnFailure"  # an init container that succeeded is done
    return pod_policy == "Always" or (pod_policy == "OnFailure" and exit_code != 0)


def restart_delay(crashes: int) -> float:
    """Seconds to wait before the next start: doubling from 1 s up to 60 s."""
    return float(min(BACKOFF_MAX, BACKOFF_START * 2 ** max(crashes - 1, 0)))


def exit_code_of(returncode: int) -> int:
    """A Popen return code as a container runtime reports it (128 + signal when killed)."""
    return 128 - returncode if returncode < 0 else returncode


def after_exit(
    state: ContainerState, ending: Termination, restart: bool, delay: float
) -> ContainerState:
    """The state of a container whose process has just ended."""
    if not restart:
        return replace(state, running_since=None, terminated=ending, ready=False)
    return replace(
        state,
        running_since=None,
        last_termination=ending,
        waiting_reason="CrashLoopBackOff",
        waiting_message=f"back-off {delay:.0f}s restarting after exit code {ending.exit_code}",
        ready=False,
        started=False,
    )


def recovered_state(status: Obj | None, now: datetime) -> tuple[ContainerState, bool]:
    """A container's state as a previous run of the runtime left it, and whether its process
    was running then (the restart ended it, so it exits now with 137)."""
    if not status:
        return ContainerState(), False
    restarts = int(status.get("restartCount", 0))
    state = status.get("state", {})
    last = status.get("lastState", {}).get("terminated")
    recovered = ContainerState(
        restart_count=restarts, last_termination=_termination(last) if last else None
    )
    if "terminated" in state:
        return replace(recovered, terminated=_termination(state["terminated"])), False
    if "running" in state:
        started = parse_timestamp(state["running"].get("startedAt") or timestamp(now))
        return replace(recovered, running_since=started), True
    return recovered, False


def _termination(status: Obj) -> Termination:
    return Termination(
        exit_code=int(status.get("exitCode", 0)),
        reason=status.get("reason", ""),
        started_at=parse_timestamp(status["startedAt"])
        if status.get("startedAt")
        else datetime.fromtimestamp(0, UTC),
        finished_at=parse_timestamp(status["finishedAt"])
        if status.get("finishedAt")
        else datetime.fromtimestamp(0, UTC),
        message=status.get("message", ""),
    )


# ---------------------------------------------------------------- probes


@dataclass(frozen=True)
class ProbeTally:
    """Consecutive results of one probe; `result` stays None until a threshold is reached."""

    result: bool | None = None
    successes: int = 0
    failures: int = 0
    last_run: float | None = None  # seconds after the container started


def probe_due(probe: Obj, tally: ProbeTally, age: float) -> bool:
    if age < probe.get("initialDelaySeconds", 0):
        return False
    return tally.last_run is None or age - tally.last_run >= probe.get("periodSeconds", 10)


def record_probe(probe: Obj, tally: ProbeTally, success: bool, age: float) -> ProbeTally:
    successes = tally.successes + 1 if success else 0
    failures = 0 if success else tally.failures + 1
    result = tally.result
    if successes >= probe.get("successThreshold", 1):
        result = True
    if failures >= probe.get("failureThreshold", 3):
        result = False
    return ProbeTally(result, successes, failures, age)


def probe_port(port: int | str, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ConfigError(f"container {container['name']} has no port named {port}")


# ---------------------------------------------------------------- pod status


def pod_phase(
    policy: str, init: Sequence[tuple[Obj, ContainerState]], app: Sequence[ContainerState]
) -> str:
    """The pod phase, by the kubelet's rules (sidecars do not count towards completion)."""
    for container, state in init:
        if (
            not is_sidecar(container)
            and state.terminated is not None
            and state.terminated.exit_code != 0
        ):
            return "Failed"
        if not init_done(container, state):
            return "Pending"
    running = waiting = stopped = succeeded = 0
    for state in app:
        if state.running_since is not None:
            running += 1
        elif state.terminated is not None:
            stopped += 1
            succeeded += state.terminated.exit_code == 0
        elif state.last_termination is not None:
            stopped += 1  # restarting
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped == succeeded and policy != "Always":
        return "Succeeded"
    return "Failed" if policy == "Never" else "Running"


def merge_conditions(
    wanted: Mapping[str, tuple[bool, str, str]], previous: Sequence[Obj], now: datetime
) -> list[Obj]:
    """Conditions with lastTransitionTime kept from `previous` unless the status changed."""
    before = {condition["type"]: condition for condition in previous}
    out = []
    for kind, (ok, reason, message) in wanted.items():
        status = "True" if ok else "False"
        old = before.get(kind)
        since = (
            old["lastTransitionTime"]
            if old and old.get("status") == status and old.get("lastTransitionTime")
            else timestamp(now)
        )
        # None, not absent: in a strategic merge patch it removes a stale reason or message.
        condition = {
            "type": kind,
            "status": status,
            "reason": reason or None,
            "message": message or None,
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        out.append(condition)
    return out


def pod_conditions(
    pod: Obj,
    phase: str,
    init: Sequence[tuple[Obj, ContainerState]],
    app: Sequence[tuple[Obj, ContainerState]],
    now: datetime,
    reported: Sequence[Obj],
) -> list[Obj]:
    """The conditions the runtime owns; `reported` are those it sent last, if any (the
    pod object may lag behind them, which would move transition times)."""
    previous = pod.get("status", {}).get("conditions", [])
    terminal = phase in ("Succeeded", "Failed")
    incomplete = [c["name"] for c, s in init if not init_done(c, s)]
    running_beside = [(c, s) for c, s in init if is_sidecar(c)] + list(app)
    unready = [c["name"] for c, s in running_beside if not s.ready]
    gates = {gate["conditionType"] for gate in pod["spec"].get("readinessGates", [])}
    gates_met = all(
        any(c["type"] == gate and c.get("status") == "True" for c in previous) for gate in gates
    )
    if terminal:
        initialized = (True, "PodCompleted", "")
        containers_ready = (False, "PodCompleted", "")
        ready = containers_ready
    else:
        initialized = (
            not incomplete,
            "" if not incomplete else "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(incomplete)}]" if incomplete else "",
        )
        containers_ready = (
            not unready,
            "" if not unready else "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]" if unready else "",
        )
        ready = (
            containers_ready
            if gates_met
            else (False, "ReadinessGatesNotReady", "the pod's readiness gates are not all True")
        )
    wanted = {
        "PodReadyToStartContainers": (not terminal, "", ""),
        "Initialized": initialized,
        "ContainersReady": containers_ready,
        "Ready": ready,
    }
    return merge_conditions(wanted, reported or previous, now)


def _termination_status(ending: Termination, pid: int | None) -> Obj:
    out: Obj = {
        "exitCode": ending.exit_code,
        "reason": ending.reason,
        "startedAt": timestamp(ending.started_at),
        "finishedAt": timestamp(ending.finished_at),
    }
    if ending.message:
        out["message"] = ending.message
    if pid is not None:
        out["containerID"] = f"localnode://{pid}"
    return out


def container_status(container: Obj, state: ContainerState) -> Obj:
    """One entry of containerStatuses; containerID is localnode://<PID of the group leader>."""
    image = container.get("image", "")
    out: Obj = {
        "name": container["name"],
        "image": image,
        "imageID": image,
        "ready": state.ready,
        "restartCount": state.restart_count,
        "started": state.running_since is not None and state.started,
        "lastState": {"terminated": _termination_status(state.last_termination, None)}
        if state.last_termination
        else {},
    }
    if state.pid is not None:
        out["containerID"] = f"localnode://{state.pid}"
    if state.running_since is not None:
        out["state"] = {"running": {"startedAt": timestamp(state.running_since)}}
    elif state.terminated is not None:
        out["state"] = {"terminated": _termination_status(state.terminated, state.pid)}
    else:
        waiting = {"reason": state.waiting_reason}
        if state.waiting_message:
            waiting["message"] = state.waiting_message
        out["state"] = {"waiting": waiting}
    return out


def pod_status(
    pod: Obj,
    pod_ip: str,
    started: datetime,
    init: Sequence[tuple[Obj, ContainerState]],
    app: Sequence[tuple[Obj, ContainerState]],
    now: datetime,
    reported: Sequence[Obj] = (),
) -> Obj:
    """The status the runtime reports for a pod (`reported`: the conditions it sent last)."""
    phase = pod_phase(pod["spec"].get("restartPolicy", "Always"), init, [state for _, state in app])
    status: Obj = {
        "phase": phase,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": timestamp(started),
        "conditions": pod_conditions(pod, phase, init, app, now, reported),
        "containerStatuses": [container_status(c, s) for c, s in app],
    }
    if init:
        status["initContainerStatuses"] = [container_status(c, s) for c, s in init]
    return status


# ---------------------------------------------------------------- the Node


def node_conditions(ready: bool, previous: Sequence[Obj], now: datetime) -> list[Obj]:
    wanted = {
        "MemoryPressure": (
            False,
            "KubeletHasSufficientMemory",
            "the local node does not track memory pressure",
        ),
        "DiskPressure": (
            False,
            "KubeletHasNoDiskPressure",
            "the local node does not track disk pressure",
        ),
        "PIDPressure": (
            False,
            "KubeletHasSufficientPID",
            "the local node does not track PID pressure",
        ),
        "Ready": (True, "KubeletReady", "local node runtime is posting ready status")
        if ready
        else (False, "KubeletNotReady", "local node runtime stopped"),
    }
    conditions = merge_conditions(wanted, previous, now)
    for condition in conditions:
        del condition["lastProbeTime"]
        condition["lastHeartbeatTime"] = timestamp(now)
    return conditions


def node_manifest(name: str, resources: Mapping[str, str]) -> Obj:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "equiguard.io/local-node": "true",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def node_status(
    name: str, resources: Mapping[str, str], version: str, conditions: list[Obj], logs_port: int
) -> Obj:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    machine = read("/etc/machine-id") or name
    os_image = next(
        (
            line.split("=", 1)[1].strip('"')
            for line in read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        "Linux",
    )
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": conditions,
        # No Hostname address: the API server would try to resolve it to reach the logs.
        "addresses": [{"type": "InternalIP", "address": HOST_IP}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": logs_port}},
        "nodeInfo": {
            "machineID": machine,
            "systemUUID": machine,
            "bootID": read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": os_image,
            "containerRuntimeVersion": "localnode://1",
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": node_manifest(name, resources)["metadata"]["labels"][
                "kubernetes.io/arch"
            ],
        },
    }


# ================================================================ I/O from here on


class Kube:
    """JSON calls to the API server, authenticated from a kubeconfig; bodies stay plain dicts."""

    def __init__(self, kubeconfig: str) -> None:
        self.config = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]  # untyped upstream
            config_file=kubeconfig, client_configuration=self.config
        )
        self.api = client.ApiClient(self.config)
        ca_file = self.config.ssl_ca_cert
        self.ca_data = Path(ca_file).read_bytes() if ca_file else b""

    def _send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None,
        body: Obj | None,
        content_type: str,
        timeout: Any,
    ) -> Any:
        _, url, headers, _, _ = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=timeout
        )
        if not 200 <= response.status <= 299:
            text = response.read().decode(errors="replace")  # type: ignore[no-untyped-call]
            raise ApiException(status=response.status, reason=response.reason, body=text)
        return response

    def call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        response = self._send(method, path, query, body, content_type, 15)
        data: Obj = json.loads(response.read() or b"{}")
        return data

    def get_or_none(self, path: str) -> Obj | None:
        try:
            return self.call("GET", path)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def watch(self, path: str, query: list[tuple[str, str]]) -> Iterator[Obj]:
        """Watch events until the server ends the watch (timeoutSeconds in `query`)."""
        response = self._send(
            "GET", path, [*query, ("watch", "true")], None, "application/json", (10, 400)
        )
        try:
            for line in response.response:
                if line.strip():
                    event: Obj = json.loads(line)
                    yield event
        finally:
            response.response.release_conn()


API_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


class ContainerProcess:
    """A container's processes: a session of their own, led by the container's command."""

    def __init__(self, popen: subprocess.Popen[bytes], record: Path, log_path: Path) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.record = record
        self.log_path = log_path

    @classmethod
    def start(
        cls, argv: list[str], env: Mapping[str, str], cwd: Path, log_path: Path, pid_dir: Path
    ) -> ContainerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            popen = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        record = pid_dir / f"{popen.pid}.json"
        record.write_text(json.dumps({"pgid": popen.pid, "marker": env[MARKER_ENV]}))
        return cls(popen, record, log_path)

    def exited(self) -> bool:
        # WNOWAIT leaves the ended leader a zombie, so its process-group ID cannot be
        # reused before end() has killed what is left of the group.
        return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group has ended already
            os.killpg(self.pid, signum)

    def end(self) -> int:
        """Kills what is left of the group (a container ends with its first process); reaps it."""
        self.signal(signal.SIGKILL)
        returncode = self.popen.wait()
        # SIGKILL is delivered asynchronously: wait (briefly) until no member is left.
        # The group ID cannot be reused while a member exists, so polling it is safe.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.record.unlink(missing_ok=True)
        self.log_path.with_suffix(".ended").touch()  # ends `kubectl logs -f`
        return exit_code_of(returncode)


def stop_processes(processes: Sequence[ContainerProcess], grace: float) -> dict[int, int]:
    """SIGTERM to every group, SIGKILL to what remains after `grace` seconds; exit code by PID."""
    for process in processes:
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not all(process.exited() for process in processes):
        time.sleep(0.1)
    return {process.pid: process.end() for process in processes}


def process_group_of(stat: str) -> int:
    """The process-group ID in the text of /proc/<pid>/stat (fields after the command name)."""
    return int(stat.rsplit(")", 1)[1].split()[2])


def kill_stale_processes(pid_dir: Path) -> int:
    """Kills processes a previous run left behind: members of a recorded process group that
    still carry the recorded marker in their environment (so a reused PID is never hit)."""
    markers = {}
    for record in pid_dir.glob("*.json"):
        entry = json.loads(record.read_text())
        markers[int(entry["pgid"])] = f"{MARKER_ENV}={entry['marker']}".encode()
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            pgid = process_group_of((proc / "stat").read_text())
            if pgid in markers and markers[pgid] in (proc / "environ").read_bytes().split(b"\0"):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    for record in pid_dir.glob("*.json"):
        record.unlink()
    return killed


def http_probe(action: Obj, host: str, port: int, timeout: float) -> bool:
    connection_class = (
        http.client.HTTPSConnection
        if action.get("scheme", "HTTP") == "HTTPS"
        else http.client.HTTPConnection
    )
    kwargs: dict[str, Any] = {"timeout": timeout}
    if connection_class is http.client.HTTPSConnection:
        kwargs["context"] = (
            ssl._create_unverified_context()
        )  # the kubelet does not verify probe certificates either
    connection = connection_class(host, port, **kwargs)
    try:
        headers = {header["name"]: header["value"] for header in action.get("httpHeaders", [])}
        connection.request("GET", action.get("path", "/"), headers=headers)
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def tcp_probe(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Container:
    """The runtime record of one container; only its pod's worker thread touches it."""

    spec: Obj
    is_init: bool
    state: ContainerState = field(default_factory=ContainerState)
    process: ContainerProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path("/")
    mounts: list[tuple[str, str]] = field(default_factory=list)
    started_mono: float = 0.0
    restart_at: float = 0.0
    crashes: int = 0
    probes: dict[str, ProbeTally] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass(frozen=True)
class Settings:
    node_name: str
    state_dir: Path
    venv: Path
    max_grace: float


class PodWorker:
    """Runs one pod: volumes, containers in order, probes, restarts, status, termination."""

    def __init__(self, kube: Kube, settings: Settings, ips: PodIPs, pod: Obj) -> None:
        self.kube, self.settings, self.ips = kube, settings, ips
        meta = pod["metadata"]
        self.uid, self.name, self.namespace = meta["uid"], meta["name"], meta["namespace"]
        self.path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"
        self.dir = settings.state_dir / "pods" / self.uid
        self.log_dir = settings.state_dir / "logs" / f"{self.namespace}_{self.name}_{self.uid}"
        self._pod, self._lock, self._wake = pod, threading.Lock(), threading.Event()
        self._vanished = self._stopping = False
        self.finished = False
        status = pod.get("status", {})
        self.terminal = status.get("phase") in ("Succeeded", "Failed")
        self.ip: str = HOST_IP  # hostNetwork pods, and pods that ended in an earlier run
        if not pod["spec"].get("hostNetwork"):
            old_ip = status.get("podIP")
            self.ip = old_ip or HOST_IP if self.terminal else ips.assign(self.uid, old_ip)
        self.started = (
            parse_timestamp(status["startTime"]) if status.get("startTime") else datetime.now(UTC)
        )
        self.containers = self._recover(pod)
        self.volume_dirs: dict[str, Path] = {}
        self.token_volumes: set[str] = set()
        self.refs: Refs = {}
        self.tokens: dict[tuple[str, int], tuple[str, float]] = {}
        self.volumes_ready = False
        self.volumes_due = 0.0  # monotonic time of the next (re)materialization
        self.reported: Obj | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"pod {self.namespace}/{self.name}", daemon=True
        )

    def _log(self, level: int, message: str, *args: object) -> None:
        log.log(level, f"pod {self.namespace}/{self.name}: {message}", *args)

    # -- messages from the dispatcher

    def update(self, pod: Obj) -> None:
        with self._lock:
            self._pod = pod
        self._wake.set()

    def vanish(self) -> None:
        self._vanished = True
        self._wake.set()

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- the loop

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    pod = self._pod
                if self._stopping:
                    self._stop_all(min(self._grace(pod), SHUTDOWN_GRACE_SECONDS))
                    break
                if self._vanished:  # force-deleted: nobody waits for a graceful end
                    self._stop_all(0.0)
                    shutil.rmtree(self.dir, ignore_errors=True)
                    break
                if pod["metadata"].get("deletionTimestamp"):
                    self._stop_all(self._grace(pod))
                    self._delete(pod)
                    break
                if not self.terminal:
                    self._step(pod)
                self._report(pod)
                self._wake.wait(TICK_SECONDS if not self.terminal else 30)
                self._wake.clear()
        except Exception:
            log.exception(
                "pod %s/%s: worker failed; stopping its processes", self.namespace, self.name
            )
            self._stop_all(0.0)
        finally:
            self.ips.release(self.uid)
            self.finished = True

    def _recover(self, pod: Obj) -> list[Container]:
        status = pod.get("status", {})
        now = datetime.now(UTC)
        containers = []
        for is_init, key in ((True, "initContainers"), (False, "containers")):
            previous = {
                entry["name"]: entry
                for entry in status.get(f"{'initC' if is_init else 'c'}ontainerStatuses", [])
            }
            for spec in pod["spec"].get(key, []):
                container = Container(spec, is_init)
                container.state, was_running = recovered_state(previous.get(spec["name"]), now)
                if was_running and not self.terminal:
                    self._log(logging.INFO, "%s was running when the runtime stopped", spec["name"])
                    self._finish(
                        container,
                        pod,
                        137,
                        "Error",
                        "stopped when the local node runtime restarted",
                    )
                containers.append(container)
        return containers

    def _step(self, pod: Obj) -> None:
        """Moves the pod on by one tick: volumes, then init containers in order, then the rest."""
        mono = time.monotonic()
        if mono >= self.volumes_due:
            try:
                self._prepare_volumes(pod)
                self.volumes_ready, self.volumes_due = True, mono + VOLUME_REFRESH_SECONDS
            except (ConfigError, *API_ERRORS) as error:
                self.volumes_due = mono + 5
                for container in self.containers:
                    if container.process is None and container.state.terminated is None:
                        container.state = replace(
                            container.state, waiting_message=f"volumes not ready: {error}"
                        )
        if not self.volumes_ready:
            return
        for container in (c for c in self.containers if c.is_init):
            self._tend(container, pod)
            if not init_done(container.spec, container.state):
                break
        else:
            for container in (c for c in self.containers if not c.is_init):
                self._tend(container, pod)
        if self._phase(pod) in ("Succeeded", "Failed"):
            self.terminal = True
            self._stop_all(self._grace(pod))  # sidecars end with the pod
            self.ips.release(self.uid)

    def _tend(self, container: Container, pod: Obj) -> None:
        if container.process is not None:
            if container.process.exited():
                self._finish(container, pod, container.process.end(), "", "")
            else:
                self._probe(container, pod)
        elif container.state.terminated is None and time.monotonic() >= container.restart_at:
            self._start(container, pod)

    def _start(self, container: Container, pod: Obj) -> None:
        now, spec = datetime.now(UTC), container.spec
        restarts = container.state.restart_count + (1 if container.state.last_termination else 0)
        try:
            self._configure(container, pod)
            argv = [
                translate_paths(part, container.mounts)
                for part in container_argv(spec, container.env)
            ]
        except ConfigError as error:
            container.state = replace(
                container.state,
                waiting_reason="CreateContainerConfigError",
                waiting_message=str(error),
            )
            container.restart_at = time.monotonic() + 5
            return
        container.started_mono = time.monotonic()
        log_path = self.log_dir / container.name / f"{restarts}.log"
        try:
            container.process = ContainerProcess.start(
                argv, container.env, container.cwd, log_path, self.settings.state_dir / "pids"
            )
        except OSError as error:  # like a runtime that cannot exec the entrypoint
            container.state = replace(
                container.state, running_since=now, restart_count=restarts, pid=None
            )
            self._finish(container, pod, 128, "StartError", str(error))
            return
        container.probes = {}
        container.state = ContainerState(
            running_since=now,
            last_termination=container.state.last_termination,
            restart_count=restarts,
            pid=container.process.pid,
            # Ready at once only when no probe has a say; see _probe for the rest.
            ready=not {"readinessProbe", "startupProbe"} & spec.keys(),
            started="startupProbe" not in spec,
        )
        self._log(logging.INFO, "started %s (pid %d)", container.name, container.process.pid)

    def _configure(self, container: Container, pod: Obj) -> None:
        """Environment, mounts and working directory of a container's next process."""
        spec = container.spec
        home, tmp = self.dir / "home", self.dir / "tmp"
        container.mounts = mount_table(spec, self.volume_dirs)
        tmp_mount = dict(container.mounts).get("/tmp")
        base = {
            "PATH": f"{self.settings.venv / 'bin'}:{SYSTEM_PATH}",
            "VIRTUAL_ENV": str(self.settings.venv),
            "HOME": str(home),
            "TMPDIR": tmp_mount or str(tmp),
            "HOSTNAME": self.name,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "POD_IP": self.ip,
            MARKER_ENV: f"{self.uid}/{container.name}",
        }
        if any(mount["name"] in self.token_volumes for mount in spec.get("volumeMounts", [])):
            base["KUBECONFIG"] = str(self.dir / "kubeconfig.d" / "kubeconfig")
        defined = spec_env(pod, spec, self.ip, self.refs, base)
        container.env = {
            **base,
            **{name: translate_paths(value, container.mounts) for name, value in defined.items()},
        }
        container.cwd = self.dir / "containers" / container.name
        if spec.get("workingDir"):
            container.cwd = Path(translate_paths(spec["workingDir"], container.mounts))
            if not container.cwd.is_dir():
                raise ConfigError(
                    f"workingDir {spec['workingDir']} does not exist on the local node"
                )
        for folder in (home, tmp, container.cwd):
            folder.mkdir(parents=True, exist_ok=True)

    def _finish(
        self, container: Container, pod: Obj, exit_code: int, reason: str, message: str
    ) -> None:
        now, mono = datetime.now(UTC), time.monotonic()
        ending = Termination(
            exit_code,
            reason or ("Completed" if exit_code == 0 else "Error"),
            container.state.running_since or now,
            now,
            message,
        )
        restart = not self.terminal and should_restart(
            pod["spec"].get("restartPolicy", "Always"), container.spec, container.is_init, exit_code
        )
        container.crashes = (
            0 if mono - container.started_mono >= BACKOFF_RESET else container.crashes + 1
        )
        delay = restart_delay(container.crashes)
        container.state = after_exit(container.state, ending, restart, delay)
        container.restart_at = mono + delay
        container.process = None
        then = f"; restarting in {delay:.0f} s" if restart else ""
        self._log(logging.INFO, "%s exited with %d%s", container.name, exit_code, then)

    def _probe(self, container: Container, pod: Obj) -> None:
        age = time.monotonic() - container.started_mono
        for kind in ("startup", "liveness", "readiness"):
            probe = container.spec.get(f"{kind}Probe")
            if not probe or (kind == "startup") == container.state.started:
                continue
            tally = container.probes.get(kind, ProbeTally())
            if not probe_due(probe, tally, age):
                continue
            tally = record_probe(probe, tally, self._check(probe, container), age)
            container.probes[kind] = tally
            if kind == "readiness":
                container.state = replace(container.state, ready=tally.result is True)
            elif tally.result is False:
                assert container.process is not None
                grace = min(
                    float(probe.get("terminationGracePeriodSeconds", self._grace(pod))),
                    self.settings.max_grace,
                )
                codes = stop_processes([container.process], grace)
                self._finish(
                    container,
                    pod,
                    codes[container.process.pid],
                    "",
                    f"container {container.name} failed its {kind} probe",
                )
                return
            elif kind == "startup" and tally.result:
                ready = "readinessProbe" not in container.spec
                container.state = replace(container.state, started=True, ready=ready)

    def _check(self, probe: Obj, container: Container) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                action = probe["httpGet"]
                return http_probe(
                    action,
                    action.get("host") or self.ip,
                    probe_port(action["port"], container.spec),
                    timeout,
                )
            if "tcpSocket" in probe:
                action = probe["tcpSocket"]
                return tcp_probe(
                    action.get("host") or self.ip,
                    probe_port(action["port"], container.spec),
                    timeout,
                )
            if "exec" in probe:
                argv = [
                    translate_paths(expand(part, container.env), container.mounts)
                    for part in probe["exec"]["command"]
                ]
                done = subprocess.run(
                    argv,
                    env=container.env,
                    cwd=container.cwd,
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                )
                return done.returncode == 0
        except ConfigError as error:
            self._log(logging.WARNING, "probe of %s: %s", container.name, error)
            return False
        except (OSError, subprocess.TimeoutExpired):
            return False
        self._log(
            logging.WARNING, "%s has a probe kind the local node does not run", container.name
        )
        return False

    def _prepare_volumes(self, pod: Obj) -> None:
        """Gathers referenced ConfigMaps, Secrets and tokens, then writes the volume folders."""
        refs: dict[tuple[str, str], Mapping[str, bytes] | None] = {}
        for kind, name in referenced_objects(pod):
            body = self.kube.get_or_none(
                f"/api/v1/namespaces/{self.namespace}/{kind.lower()}s/{name}"
            )
            if body is None:
                refs[(kind, name)] = None
            elif kind == "Secret":
                refs[(kind, name)] = {
                    key: base64.b64decode(value) for key, value in body.get("data", {}).items()
                }
            else:
                data = {key: value.encode() for key, value in body.get("data", {}).items()}
                refs[(kind, name)] = data | {
                    key: base64.b64decode(value)
                    for key, value in body.get("binaryData", {}).items()
                }
        self.refs = refs
        tokens = {key: self._token(*key) for key in token_requests(pod)}
        for volume in pod["spec"].get("volumes", []):
            kind = volume_kind(volume)
            if kind == "hostPath":
                self.volume_dirs[volume["name"]] = Path(volume["hostPath"]["path"])
                continue
            folder = self.dir / "volumes" / volume["name"]
            self.volume_dirs[volume["name"]] = folder
            folder.mkdir(parents=True, exist_ok=True)
            if kind != "emptyDir":
                write_files(folder, volume_files(volume, pod, self.ip, refs, tokens))
                token_paths = [
                    s["serviceAccountToken"]["path"]
                    for s in volume.get("projected", {}).get("sources", [])
                    if "serviceAccountToken" in s
                ]
                if token_paths:
                    self.token_volumes.add(volume["name"])
                    kubeconfig = pod_kubeconfig(
                        self.kube.config.host, self.kube.ca_data, folder / token_paths[0]
                    )
                    write_files(self.dir / "kubeconfig.d", {"kubeconfig": kubeconfig.encode()})

    def _token(self, audience: str, seconds: int) -> str:
        """A token for the pod's service account, requested again after 80% of its lifetime."""
        cached = self.tokens.get((audience, seconds))
        if cached and time.time() < cached[1]:
            return cached[0]
        account = self._pod["spec"].get("serviceAccountName", "default")
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": self.name,
                    "uid": self.uid,
                },
            },
        }
        answer = self.kube.call(
            "POST",
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{account}/token",
            body=request,
        )
        expires = parse_timestamp(answer["status"]["expirationTimestamp"]).timestamp()
        token = str(answer["status"]["token"])
        self.tokens[(audience, seconds)] = (token, time.time() + 0.8 * (expires - time.time()))
        return token

    def _phase(self, pod: Obj) -> str:
        return str(self._status(pod)["phase"])

    def _status(self, pod: Obj) -> Obj:
        init = [(c.spec, c.state) for c in self.containers if c.is_init]
        app = [(c.spec, c.state) for c in self.containers if not c.is_init]
        reported = self.reported["conditions"] if self.reported else ()
        return pod_status(pod, self.ip, self.started, init, app, datetime.now(UTC), reported)

    def _report(self, pod: Obj) -> None:
        if (
            self.terminal
            and self.reported is None
            and pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
        ):
            return  # finished before this run of the runtime; nothing new to say
        status = self._status(pod)
        if status == self.reported:
            return
        try:
            self.kube.call(
                "PATCH",
                f"{self.path}/status",
                body={"metadata": {"uid": self.uid}, "status": status},
                content_type=STRATEGIC_MERGE,
            )
            self.reported = status
        except API_ERRORS as error:
            self._log(logging.WARNING, "status not reported: %s", error)

    def _grace(self, pod: Obj) -> float:
        seconds = pod["metadata"].get(
            "deletionGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30)
        )
        return min(float(seconds), self.settings.max_grace)

    def _stop_all(self, grace: float) -> None:
        """Stops app containers first, then sidecars, as the kubelet does."""
        for group in (
            [c for c in self.containers if not c.is_init],
            [c for c in self.containers if c.is_init],
        ):
            running = [c for c in group if c.process is not None]
            codes = stop_processes([c.process for c in running if c.process], grace)
            for container in running:
                assert container.process is not None
                ending = Termination(
                    codes[container.process.pid],
                    "",
                    container.state.running_since or datetime.now(UTC),
                    datetime.now(UTC),
                )
                reason = "Completed" if ending.exit_code == 0 else "Error"
                container.state = after_exit(
                    container.state, replace(ending, reason=reason), False, 0
                )
                container.process = None

    def _delete(self, pod: Obj) -> None:
        """Removes the pod once its processes have ended: the kubelet's final delete."""
        options = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.kube.call("DELETE", self.path, body=options)
        except ApiException as error:
            if error.status not in (404, 409):
                raise
        shutil.rmtree(self.dir, ignore_errors=True)
        self._log(logging.INFO, "deleted")


def write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Makes `folder` hold exactly `files` (relative paths), rewriting only what changed."""
    for relative, content in files.items():
        target = folder / relative
        if ".." in Path(relative).parts:
            raise ConfigError(f"volume file path {relative} leaves the volume")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)
    wanted = {folder / relative for relative in files}
    for existing in folder.rglob("*"):
        if existing.is_file() and existing not in wanted:
            existing.unlink()


# ---------------------------------------------------------------- kubectl logs


def container_log(
    log_root: Path, namespace: str, pod: str, container: str, previous: bool
) -> Path | None:
    """The log file of a container's current (or previous) run, from the newest pod of that name."""
    pods = sorted(log_root.glob(f"{namespace}_{pod}_*"), key=lambda folder: folder.stat().st_mtime)
    if not pods:
        return None
    runs = sorted((pods[-1] / container).glob("*.log"), key=lambda file: int(file.stem))
    wanted = -2 if previous else -1
    return runs[wanted] if len(runs) >= -wanted else None


def last_lines(data: bytes, count: int | None) -> bytes:
    if count is None:
        return data
    return b"".join(data.splitlines(keepends=True)[-count:]) if count > 0 else b""


class LogHandler(BaseHTTPRequestHandler):
    """The kubelet endpoint the API server proxies `kubectl logs` to: /containerLogs/ns/pod/c."""

    log_root: Path

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        found = None
        if len(parts) == 4 and parts[0] == "containerLogs":
            previous = query.get("previous") == ["true"]
            found = container_log(self.log_root, parts[1], parts[2], parts[3], previous)
        if found is None:
            self.send_error(404, "no such container log on the local node")
            return
        tail = int(query["tailLines"][0]) if "tailLines" in query else None
        data = found.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(last_lines(data, tail))
        offset = len(data)
        while query.get("follow") == ["true"]:  # until the process ends or the client leaves
            ended = found.with_suffix(".ended").exists()
            with found.open("rb") as file:
                file.seek(offset)
                more = file.read()
            offset += len(more)
            try:
                self.wfile.write(more)
                self.wfile.flush()
            except OSError:
                return
            if ended:
                return
            time.sleep(0.5)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: the API server asks on behalf of kubectl users."""


def serve_logs(state_dir: Path, node_name: str) -> int:
    """Starts the log endpoint over TLS on a free loopback port; returns the port.

    The API server does not verify a kubelet's certificate unless told to, so a
    self-signed one made with openssl will do.
    """
    tls = state_dir / "tls"
    if not (tls / "kubelet.crt").exists():
        tls.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-keyout", str(tls / "kubelet.key"), "-out", str(tls / "kubelet.crt"),
             "-subj", f"/CN={node_name}", "-addext", f"subjectAltName=IP:{HOST_IP}"],
            check=True, capture_output=True,
        )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "kubelet.crt", tls / "kubelet.key")
    handler = type("Handler", (LogHandler,), {"log_root": state_dir / "logs"})
    server = ThreadingHTTPServer((HOST_IP, 0), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="logs", daemon=True).start()
    return int(server.server_address[1])


class Runtime:
    """The node: registration, heartbeats, and one worker per pod bound to it."""

    def __init__(
        self, kube: Kube, settings: Settings, resources: Mapping[str, str], logs_port: int
    ) -> None:
        self.kube, self.settings, self.resources = kube, settings, resources
        self.logs_port = logs_port
        self.ips = PodIPs(lambda: listening_ips(Path("/proc/net/tcp").read_text()))
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.node_path = f"/api/v1/nodes/{settings.node_name}"
        self.conditions: list[Obj] = []
        self.version: str | None = None  # set once the node is registered

    def register(self, stop: threading.Event) -> None:
        """Creates the Node (or adopts an existing one) and marks it Ready; retries until done."""
        while not stop.is_set():
            try:
                version = str(self.kube.call("GET", "/version").get("gitVersion", "v0.0.0"))
                node = self.kube.get_or_none(self.node_path)
                if node is None:
                    node = self.kube.call(
                        "POST",
                        "/api/v1/nodes",
                        body=node_manifest(self.settings.node_name, self.resources),
                    )
                self.version = version
                self.conditions = node.get("status", {}).get("conditions", [])
                self.heartbeat(ready=True)
                log.info("node %s registered", self.settings.node_name)
                return
            except API_ERRORS as error:
                log.warning("node not registered yet: %s; retrying in 2 s", error)
                stop.wait(2)

    def heartbeat(self, ready: bool) -> None:
        """Posts node status (Ready) and renews the node's Lease."""
        now = datetime.now(UTC)
        name = self.settings.node_name
        self.conditions = node_conditions(ready, self.conditions, now)
        status = node_status(
            name, self.resources, self.version or "", self.conditions, self.logs_port
        )
        # A merge patch replaces lists whole: addresses and conditions are all ours.
        node = self.kube.call(
            "PATCH", f"{self.node_path}/status", body={"status": status}, content_type=MERGE_PATCH
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
        renewal = {
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": 40,
                "renewTime": micro_timestamp(now),
            }
        }
        if self.kube.get_or_none(lease_path) is None:
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": name,
                "uid": node["metadata"]["uid"],
            }
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "ownerReferences": [owner]},
                **renewal,
            }
            self.kube.call(
                "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body=lease
            )
        else:
            self.kube.call("PATCH", lease_path, body=renewal, content_type=MERGE_PATCH)

    def heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                if self.kube.get_or_none(self.node_path) is None:
                    log.warning(
                        "node %s was deleted; registering it again", self.settings.node_name
                    )
                    self.register(stop)
                self.heartbeat(ready=True)
            except API_ERRORS as error:
                log.warning("heartbeat failed: %s", error)

    def watch_loop(self, stop: threading.Event) -> None:
        """Lists then watches the pods bound to this node, handing each to its worker."""
        selector = [("fieldSelector", f"spec.nodeName={self.settings.node_name}")]
        while not stop.is_set():
            try:
                listing = self.kube.call("GET", "/api/v1/pods", query=selector)
                self.sync(listing["items"])
                version = listing["metadata"]["resourceVersion"]
                query = [*selector, ("resourceVersion", version), ("timeoutSeconds", "300")]
                for event in self.kube.watch("/api/v1/pods", query):
                    if stop.is_set() or event["type"] == "ERROR":
                        break  # an expired watch (410) is followed by a fresh list
                    self.dispatch(event["type"], event["object"])
            except API_ERRORS as error:
                log.warning("pod watch interrupted: %s; listing again in 2 s", error)
                stop.wait(2)

    def sync(self, pods: list[Obj]) -> None:
        present = {pod["metadata"]["uid"] for pod in pods}
        for pod in pods:
            self.dispatch("MODIFIED", pod)
        with self.lock:
            for uid, worker in self.workers.items():
                if uid not in present:
                    worker.vanish()

    def dispatch(self, kind: str, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            for done in [
                key for key, worker in self.workers.items() if worker.finished and key != uid
            ]:
                del self.workers[done]
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.vanish()
                return
            if worker is None:
                worker = PodWorker(self.kube, self.settings, self.ips, pod)
                self.workers[uid] = worker
                worker.thread.start()
            elif not worker.finished:
                worker.update(pod)

    def shutdown(self) -> None:
        """Ends every container, then reports the node NotReady."""
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.thread.join(timeout=SHUTDOWN_GRACE_SECONDS + 2)
        if self.version is None:
            return
        try:
            self.heartbeat(ready=False)
        except API_ERRORS as error:
            log.warning("could not report the node NotReady: %s", error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the pods bound to one Node as local processes."
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument(
        "--state-dir", required=True, type=Path, help="pod folders, container logs, PID records"
    )
    parser.add_argument(
        "--venv", type=Path, default=Path(sys.prefix), help="the virtualenv standing in for images"
    )
    # The defaults oversubscribe a small machine on purpose: test pods request
    # resources as production pods do but mostly sit idle.
    parser.add_argument("--cpu", default="16")
    parser.add_argument("--memory", default="32Gi")
    parser.add_argument("--max-pods", default="110")
    parser.add_argument(
        "--max-grace-seconds", type=float, default=15.0, help="cap on terminationGracePeriodSeconds"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    state_dir = args.state_dir.resolve()
    (state_dir / "pids").mkdir(parents=True, exist_ok=True)
    killed = kill_stale_processes(state_dir / "pids")
    if killed:
        log.info("killed %d processes left by a previous run", killed)
    settings = Settings(args.node_name, state_dir, args.venv.resolve(), args.max_grace_seconds)
    resources = {"cpu": args.cpu, "memory": args.memory, "pods": args.max_pods}
    logs_port = serve_logs(state_dir, args.node_name)
    runtime = Runtime(Kube(args.kubeconfig), settings, resources, logs_port)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runtime.register(stop)
    threading.Thread(
        target=runtime.heartbeat_loop, args=(stop,), name="heartbeat", daemon=True
    ).start()
    threading.Thread(target=runtime.watch_loop, args=(stop,), name="pods", daemon=True).start()
    stop.wait()
    log.info("stopping: ending every container")
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
