"""Stand-ins for what the operator reads and writes, for fault tests of its own code.

- ``stand_in_pods``: sidecars serving ``/v1/stats`` on loopback addresses
  (127.0.0.2, 127.0.0.3), as the pods of a model would; each can be made to
  refuse connections, hang, or answer whatever a test says.
- ``MemoryApi``: the calls the operator makes of the API server
  (equiguard.kube.Kube's methods), kept in memory, with a kill switch: the
  n-th change raises ``OperatorKilled``, as if the process died right there.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from equiguard.contracts import names
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout

PODS = ("127.0.0.2", "127.0.0.3")
STATS_TOKEN = "stats-token"

Answer = Callable[[dict[str, Any]], web.StreamResponse]


def violated_share(body: Mapping[str, Any]) -> dict[str, Any]:
    """One pod's statistics (`equiguard.stats/v1`) in which Black patients' TPR (0.5) is far
    below the other race groups' (0.9), with 1,000 labelled positives in each group."""
    spec = parse_model(body)
    layout = CellLayout.from_spec(spec.subgroups)
    race: list[str] = []
    scores: list[float] = []
    for group in ("White", "Black", "Asian", "Hispanic", "Other"):
        caught = 500 if group == "Black" else 900
        race += [group] * 1000
        scores += [0.9] * caught + [0.1] * (1000 - caught)
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(
        layout.assign({"race": race}, len(race)), np.array(scores), np.ones(len(race), dtype=int)
    )
    return stats.to_dict()


def healthy(share: dict[str, Any]) -> web.StreamResponse:
    return web.json_response(share)


@dataclass
class StandInPods:
    """What each stand-in pod answers (None: nothing listens there); `sync` applies it."""

    answers: dict[str, Answer | None]
    hang: set[str]
    sync: Callable[[], Any] = field(default=lambda: None)


@asynccontextmanager
async def stand_in_pods(
    share: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StandInPods]:
    """Both pods answering `share`; the operator's sidecar port is patched to theirs."""
    with socket.socket() as probe:
        probe.bind((PODS[0], 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(names, "SIDECAR_PORT", port)
    state = StandInPods({pod: healthy for pod in PODS}, set())
    runners: dict[str, web.AppRunner] = {}

    def app_for(pod: str) -> web.Application:
        async def stats(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {STATS_TOKEN}":
                return web.json_response({"error": "a valid bearer token is required"}, status=401)
            if pod in state.hang:
                await asyncio.sleep(3600)
            answer = state.answers[pod]
            assert answer is not None
            return answer(share)

        app = web.Application()
        app.router.add_get("/v1/stats", stats)
        return app

    async def sync() -> None:
        for pod in PODS:
            listening = state.answers[pod] is not None
            if listening and pod not in runners:
                runner = web.AppRunner(app_for(pod), shutdown_timeout=0.1)
                await runner.setup()
                await web.TCPSite(runner, pod, port).start()
                runners[pod] = runner
            elif not listening and pod in runners:
                await runners.pop(pod).cleanup()

    state.sync = sync
    try:
        await sync()
        yield state
    finally:
        for runner in runners.values():
            await runner.cleanup()


class OperatorKilled(BaseException):
    """The operator died here (a BaseException: no handler of the operator catches it)."""


Key = tuple[str, str, str]  # kind, namespace, name


class MemoryApi:
    """An API server in memory for one namespace, for the operator's Kube calls.

    Pods are listed as ready on the stand-in pods' addresses, annotated with the
    revision the stored Deployment serves. Changes (applies, creations, status
    patches) are counted; with `kill_at`, the change of that number raises
    OperatorKilled before it happens.
    """

    def __init__(self, model: Mapping[str, Any]) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.changes = 0
        self.kill_at: int | None = None
        self.created: list[Key] = []  # every creation, duplicates included
        self._put(copy.deepcopy(dict(model)))

    def model(self) -> dict[str, Any]:
        meta = next(o for k, o in self.objects.items() if k[0] == "ClinicalModel")["metadata"]
        found = self.get("equiguard.io/v1alpha1", "ClinicalModel", meta["namespace"], meta["name"])
        assert found is not None
        return found

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _, _), o in self.objects.items() if k == kind]

    # equiguard.kube.Kube's methods

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._change()
        stored = copy.deepcopy(dict(body))
        if stored["kind"] == "Deployment":
            replicas = stored["spec"].get("replicas", 1)
            stored["metadata"]["generation"] = 1
            stored["status"] = {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "availableReplicas": replicas,
            }
        self._put(stored)
        return copy.deepcopy(stored)

    def patch_status(self, owner: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self._change()
        self.objects[self._key(owner)]["status"] = copy.deepcopy(dict(status))

    def create_if_absent(self, body: Mapping[str, Any]) -> bool:
        if self._key(body) in self.objects:
            return False
        self._change()
        self.created.append(self._key(body))
        self._put(copy.deepcopy(dict(body)))
        return True

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        if kind == "Pod":
            return self._pods(namespace)
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in self.objects.items()
            if k == kind
            and ns == namespace
            and selector.items() <= (o["metadata"].get("labels") or {}).items()
        ]

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return STATS_TOKEN

    def has_api(self, api_version: str, kind: str) -> bool:
        return False

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, name: str
    ) -> None:
        self.create_if_absent(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": involved["metadata"]["namespace"]},
                "reason": reason,
            }
        )

    # the rest

    def _pods(self, namespace: str) -> list[dict[str, Any]]:
        deployments = self.of_kind("Deployment")
        if not deployments:
            return []
        template = deployments[0]["spec"]["template"]["metadata"]
        revision = (template.get("annotations") or {}).get(names.REVISION_ANNOTATION, "")
        return [
            {
                "metadata": {
                    "name": f"pod-{i}",
                    "namespace": namespace,
                    "annotations": {names.REVISION_ANNOTATION: revision},
                },
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
            }
            for i, ip in enumerate(PODS)
        ]

    def _change(self) -> None:
        if self.kill_at is not None and self.changes == self.kill_at:
            self.kill_at = None
            raise OperatorKilled(f"killed before change {self.changes}")
        self.changes += 1

    def _key(self, body: Mapping[str, Any]) -> Key:
        meta = body["metadata"]
        return (body["kind"], meta.get("namespace", ""), meta["name"])

    def _put(self, body: dict[str, Any]) -> None:
        self.objects[self._key(body)] = body
