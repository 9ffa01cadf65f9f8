"""The local node runtime's decisions (cluster/localnode.py), without a cluster.

The runtime is a standalone program, not part of the package, so it is loaded
from its file. Its behaviour on a real control plane is tested in
tests/e2e/test_localnode.py.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("localnode", REPO / "cluster" / "localnode.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["localnode"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ln = _load()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(**spec: object) -> dict[str, object]:
    return {
        "metadata": {"name": "web-1", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
        "spec": {"nodeName": "n", **spec},
    }


# ---------------------------------------------------------------- pod IPs


def test_pod_ips_are_handed_out_in_turn_skipping_those_in_use() -> None:
    assert ln.next_pod_ip(set(), None) == "127.1.0.1"
    assert ln.next_pod_ip({"127.1.0.2"}, "127.1.0.1") == "127.1.0.3"
    assert ln.next_pod_ip(set(), "127.1.0.254") == "127.1.1.1"  # .255 and .0 are skipped


def test_pod_ips_wrap_around_to_the_start_of_the_range() -> None:
    assert ln.next_pod_ip({"127.1.0.1"}, "127.1.255.254") == "127.1.0.2"


def test_addresses_with_a_listening_socket_are_found_in_proc_net_tcp() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue\n"
        "   0: 0100017F:1F90 00000000:0000 0A 00000000:00000000\n"  # 127.1.0.1:8080 listening
        "   1: 0200017F:1F90 0100007F:D888 01 00000000:00000000\n"  # 127.1.0.2 connected only
    )
    assert ln.listening_ips(text) == {"127.1.0.1"}


def test_a_pod_keeps_the_ip_it_already_has() -> None:
    ips = ln.PodIPs(set)
    assert ips.assign("old", "127.1.0.7") == "127.1.0.7"
    assert ips.assign("new", None) == "127.1.0.1"
    assert ips.assign("new", None) == "127.1.0.1"


def test_an_address_something_else_listens_on_is_not_handed_out() -> None:
    ips = ln.PodIPs(lambda: {"127.1.0.1", "127.1.0.2"})
    assert ips.assign("pod", None) == "127.1.0.3"


# ---------------------------------------------------------------- environment and paths


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("--host=$(POD_IP)", "--host=127.1.0.5"),
        ("$(UNDEFINED) stays", "$(UNDEFINED) stays"),
        ("$$(POD_IP) is escaped", "$(POD_IP) is escaped"),
        ("cost: $5", "cost: $5"),
        ("$(unterminated", "$(unterminated"),
    ],
)
def test_variable_references_expand_as_kubernetes_does(text: str, expanded: str) -> None:
    assert ln.expand(text, {"POD_IP": "127.1.0.5"}) == expanded


MOUNTS = [
    ("/etc/equiguard/extra", "/s/extra"),
    ("/etc/equiguard", "/s/config"),
    ("/data", "/s/data"),
]


@pytest.mark.parametrize(
    ("text", "translated"),
    [
        ("/data", "/s/data"),
        ("/data/predictions.db", "/s/data/predictions.db"),
        ("--config=/etc/equiguard/sidecar.yaml", "--config=/s/config/sidecar.yaml"),
        ("/etc/equiguard/extra/a", "/s/extra/a"),
        ("/database", "/database"),
        ("/srv/data", "/srv/data"),
        ("sqlite:////data/x.db", "sqlite:////data/x.db"),
        ("a:/data:b", "a:/s/data:b"),
    ],
)
def test_mount_paths_are_rewritten_only_where_they_begin_a_path(text: str, translated: str) -> None:
    assert ln.translate_paths(text, MOUNTS) == translated


def test_mount_table_puts_the_longest_mount_path_first_and_honours_sub_path() -> None:
    container = {
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app/"},
            {"name": "config", "mountPath": "/etc/app/one.yaml", "subPath": "one.yaml"},
        ]
    }
    table = ln.mount_table(container, {"config": Path("/s/config")})
    assert table == [("/etc/app/one.yaml", "/s/config/one.yaml"), ("/etc/app", "/s/config")]


REFS = {
    ("ConfigMap", "settings"): {"level": b"debug", "port": b"3000"},
    ("Secret", "token"): {"value": b"s3cret"},
    ("ConfigMap", "absent"): None,
}


def test_env_resolves_values_downward_api_config_maps_and_secrets() -> None:
    container = {
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "URL", "value": "http://$(IP):8080"},
            {
                "name": "LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "value"}}},
            {
                "name": "GONE",
                "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "x", "optional": True}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
    }
    env = ln.spec_env(pod(), container, "127.1.0.9", REFS, {})
    assert env == {
        "CM_level": "debug",
        "CM_port": "3000",
        "IP": "127.1.0.9",
        "NAME": "web-1",
        "APP": "web",
        "URL": "http://127.1.0.9:8080",
        "LEVEL": "debug",
        "TOKEN": "s3cret",
    }


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ({"configMapKeyRef": {"name": "absent", "key": "x"}}, 'configmap "absent" not found'),
        (
            {"secretKeyRef": {"name": "token", "key": "nope"}},
            "couldn't find key nope in Secret ns/token",
        ),
        ({"fieldRef": {"fieldPath": "spec.priority"}}, "fieldRef spec.priority is not supported"),
    ],
)
def test_an_unresolvable_env_reference_is_a_config_error_naming_it(
    var: dict[str, object], message: str
) -> None:
    container = {"env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ln.ConfigError, match=message):
        ln.spec_env(pod(), container, "127.1.0.9", REFS, {})


def test_command_and_args_run_together_and_args_alone_run_as_the_command() -> None:
    env = {"POD_IP": "127.1.0.3"}
    assert ln.container_argv(
        {"command": ["python"], "args": ["-m", "http.server", "--bind", "$(POD_IP)"]}, env
    ) == ["python", "-m", "http.server", "--bind", "127.1.0.3"]
    assert ln.container_argv({"args": ["equiguard", "sidecar"]}, env) == ["equiguard", "sidecar"]


def test_a_container_without_command_or_args_is_refused_with_a_reason() -> None:
    with pytest.raises(ln.ConfigError, match="sets neither command nor args"):
        ln.container_argv({"name": "model", "image": "bento:1"}, {})


# ---------------------------------------------------------------- volumes


def test_config_map_secret_and_projected_volumes_become_files() -> None:
    the_pod = pod()
    config_map = {
        "name": "v",
        "configMap": {"name": "settings", "items": [{"key": "port", "path": "conf/port"}]},
    }
    assert ln.volume_files(config_map, the_pod, "127.1.0.2", REFS, {}) == {"conf/port": b"3000"}
    secret = {"name": "v", "secret": {"secretName": "token"}}
    assert ln.volume_files(secret, the_pod, "127.1.0.2", REFS, {}) == {"value": b"s3cret"}
    projected = {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "settings", "items": [{"key": "level", "path": "level"}]}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }
    files = ln.volume_files(projected, the_pod, "127.1.0.2", REFS, {("", 3607): "jwt"})
    assert files == {"token": b"jwt", "level": b"debug", "namespace": b"ns"}
    assert ln.token_requests({"spec": {"volumes": [projected]}}) == {("", 3607)}


def test_an_unsupported_volume_kind_is_named_in_the_error() -> None:
    with pytest.raises(ln.ConfigError, match="volume claim: the local node supports only"):
        ln.volume_kind({"name": "claim", "persistentVolumeClaim": {"claimName": "c"}})


def test_volume_folders_hold_exactly_the_current_files(tmp_path: Path) -> None:
    ln.write_files(tmp_path, {"a": b"1", "sub/b": b"2"})
    ln.write_files(tmp_path, {"a": b"3"})
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"3"


# ---------------------------------------------------------------- lifecycle decisions


@pytest.mark.parametrize(
    ("policy", "container", "is_init", "exit_code", "restart"),
    [
        ("Always", {}, False, 0, True),
        ("Always", {}, False, 1, True),
        ("OnFailure", {}, False, 0, False),
        ("OnFailure", {}, False, 2, True),
        ("Never", {}, False, 2, False),
        ("Always", {}, True, 0, False),  # an init container that succeeded is done
        ("Always", {}, True, 1, True),
        ("Never", {}, True, 1, False),
        ("Never", {"restartPolicy": "Always"}, True, 0, True),  # a sidecar always restarts
    ],
)
def test_restart_follows_the_restart_policy(
    policy: str, container: dict[str, str], is_init: bool, exit_code: int, restart: bool
) -> None:
    assert ln.should_restart(policy, container, is_init, exit_code) is restart


def test_restart_back_off_doubles_from_one_second_up_to_a_minute() -> None:
    assert [ln.restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_process_killed_by_a_signal_reports_128_plus_the_signal() -> None:
    assert ln.exit_code_of(-signal.SIGKILL) == 137
    assert ln.exit_code_of(3) == 3


def ended(code: int) -> object:
    return ln.Termination(code, "Completed" if code == 0 else "Error", T0, T0)


RUNNING = ln.ContainerState(running_since=T0)
WAITING = ln.ContainerState()


def done(code: int) -> object:
    return ln.ContainerState(terminated=ended(code))


def restarting(code: int) -> object:
    return ln.ContainerState(last_termination=ended(code))


@pytest.mark.parametrize(
    ("policy", "init", "app", "phase"),
    [
        ("Always", [], [WAITING], "Pending"),
        ("Always", [], [RUNNING, WAITING], "Pending"),
        ("Always", [], [RUNNING], "Running"),
        ("Always", [], [restarting(0)], "Running"),
        ("Never", [], [done(0)], "Succeeded"),
        ("Never", [], [done(0), done(3)], "Failed"),
        ("Never", [], [RUNNING, done(3)], "Running"),
        ("OnFailure", [], [restarting(1)], "Running"),
        ("OnFailure", [], [done(0), done(0)], "Succeeded"),
        ("Never", [({}, RUNNING)], [WAITING], "Pending"),
        ("Never", [({}, done(1))], [WAITING], "Failed"),
        ("OnFailure", [({}, restarting(1))], [WAITING], "Pending"),
        ("Never", [({}, done(0))], [RUNNING], "Running"),
        # a sidecar does not keep a finished Job pod running
        (
            "Never",
            [({"restartPolicy": "Always"}, ln.ContainerState(running_since=T0, started=True))],
            [done(0)],
            "Succeeded",
        ),
    ],
)
def test_pod_phase_follows_the_kubelet_rules(
    policy: str, init: list[object], app: list[object], phase: str
) -> None:
    assert ln.pod_phase(policy, init, app) == phase


def test_a_failed_container_is_reported_with_its_exit_code() -> None:
    state = ln.after_exit(RUNNING, ended(3), restart=False, delay=1)
    status = ln.container_status({"name": "job", "image": "venv"}, state)
    assert status["state"]["terminated"]["exitCode"] == 3
    assert status["state"]["terminated"]["reason"] == "Error"
    assert status["ready"] is False


def test_a_restarting_container_waits_in_back_off_and_keeps_its_last_state() -> None:
    state = ln.after_exit(replace(RUNNING, restart_count=2), ended(1), restart=True, delay=4)
    status = ln.container_status({"name": "web"}, state)
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert status["restartCount"] == 2


def test_a_container_running_when_the_runtime_stopped_is_known_to_have_ended() -> None:
    status = {"restartCount": 1, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
    state, was_running = ln.recovered_state(status, T0 + timedelta(hours=1))
    assert was_running and state.restart_count == 1 and state.running_since == T0
    finished = {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    state, was_running = ln.recovered_state(finished, T0)
    assert not was_running and state.terminated.exit_code == 0


def test_conditions_keep_their_transition_time_until_their_status_changes() -> None:
    first = ln.merge_conditions({"Ready": (False, "ContainersNotReady", "m")}, [], T0)
    same = ln.merge_conditions(
        {"Ready": (False, "ContainersNotReady", "m")}, first, T0 + timedelta(minutes=1)
    )
    flipped = ln.merge_conditions({"Ready": (True, "", "")}, same, T0 + timedelta(minutes=2))
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert flipped[0] == {
        "type": "Ready",
        "status": "True",
        "reason": None,  # removes the stale reason in a strategic merge patch
        "message": None,
        "lastProbeTime": None,
        "lastTransitionTime": "2026-01-01T00:02:00Z",
    }


def test_a_pod_is_ready_only_when_every_container_is_ready() -> None:
    the_pod = pod(containers=[{"name": "a"}, {"name": "b"}])
    app = [
        ({"name": "a"}, ln.ContainerState(running_since=T0, ready=True)),
        ({"name": "b"}, RUNNING),
    ]
    status = ln.pod_status(the_pod, "127.1.0.4", T0, [], app, T0)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["message"] == "containers with unready status: [b]"
    assert status["podIP"] == "127.1.0.4" and status["phase"] == "Running"


# ---------------------------------------------------------------- probes

PROBE = {"initialDelaySeconds": 2, "periodSeconds": 5, "failureThreshold": 2, "successThreshold": 1}


def test_a_probe_first_runs_after_its_initial_delay_then_every_period() -> None:
    tally = ln.ProbeTally()
    assert not ln.probe_due(PROBE, tally, 1.9)
    assert ln.probe_due(PROBE, tally, 2.0)
    tally = ln.record_probe(PROBE, tally, True, 2.0)
    assert not ln.probe_due(PROBE, tally, 6.9)
    assert ln.probe_due(PROBE, tally, 7.0)


def test_a_probe_fails_only_after_failure_threshold_consecutive_failures() -> None:
    tally = ln.record_probe(PROBE, ln.ProbeTally(), True, 0)
    assert tally.result is True
    tally = ln.record_probe(PROBE, tally, False, 5)
    assert tally.result is True
    tally = ln.record_probe(PROBE, tally, False, 10)
    assert tally.result is False
    assert ln.record_probe(PROBE, tally, True, 15).result is True


def test_a_probe_port_may_name_a_container_port() -> None:
    container = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}
    assert ln.probe_port("http", container) == 8080
    assert ln.probe_port(3000, container) == 3000
    with pytest.raises(ln.ConfigError, match="no port named grpc"):
        ln.probe_port("grpc", container)


# ---------------------------------------------------------------- kubectl logs


def test_logs_come_from_the_current_or_previous_run_of_the_newest_pod_of_that_name(
    tmp_path: Path,
) -> None:
    old, new = tmp_path / "ns_web_uid-old" / "c", tmp_path / "ns_web_uid-new" / "c"
    for folder, runs in ((old, 1), (new, 11)):
        folder.mkdir(parents=True)
        for run in range(runs):
            (folder / f"{run}.log").write_text(f"run {run}")
        os.utime(folder.parent, (time.time() - 100 * (folder == old),) * 2)
    assert ln.container_log(tmp_path, "ns", "web", "c", previous=False) == new / "10.log"
    assert ln.container_log(tmp_path, "ns", "web", "c", previous=True) == new / "9.log"
    assert ln.container_log(tmp_path, "ns", "web-2", "c", previous=False) is None
    assert ln.container_log(tmp_path, "ns", "web", "other", previous=False) is None


def test_tail_lines_keeps_the_last_lines() -> None:
    assert ln.last_lines(b"a\nb\nc\n", 2) == b"b\nc\n"
    assert ln.last_lines(b"a\nb", None) == b"a\nb"
    assert ln.last_lines(b"a\nb", 0) == b""


# ---------------------------------------------------------------- processes (real ones)


def test_the_process_group_is_read_from_proc_stat_even_with_odd_command_names() -> None:
    assert ln.process_group_of("42 (a) b (c)) S 1 4242 4242 0 -1") == 4242


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# The leader ignores SIGTERM and starts a child that does too: only SIGKILL ends them.
STUBBORN = (
    "import signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _start_stubborn(tmp_path: Path) -> tuple[Any, int]:
    log = tmp_path / "c.log"
    env = {**os.environ, ln.MARKER_ENV: "uid/c"}
    process = ln.ContainerProcess.start(
        [sys.executable, "-c", STUBBORN], env, tmp_path, log, tmp_path
    )
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    return process, int(log.read_text().split()[0])


def test_stopping_a_container_ends_every_process_of_its_group_after_the_grace_period(
    tmp_path: Path,
) -> None:
    process, child = _start_stubborn(tmp_path)
    started = time.monotonic()
    codes = ln.stop_processes([process], grace=0.5)
    assert time.monotonic() - started >= 0.5
    assert codes == {process.pid: 137}
    assert not _alive(process.pid) and not _alive(child)
    assert not list(tmp_path.glob("*.json"))  # the PID record is gone with the process


def test_stale_processes_of_a_previous_run_are_killed_by_recorded_group_and_marker(
    tmp_path: Path,
) -> None:
    process, child = _start_stubborn(tmp_path)
    # A process in a recorded group but without the marker is someone else's: left alone.
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    (tmp_path / f"{stranger.pid}.json").write_text(f'{{"pgid": {stranger.pid}, "marker": "uid/x"}}')
    try:
        assert ln.kill_stale_processes(tmp_path) == 2
        process.popen.wait(timeout=5)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
        assert stranger.poll() is None
        assert not list(tmp_path.glob("*.json"))
    finally:
        stranger.kill()
        stranger.wait()
