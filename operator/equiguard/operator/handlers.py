"""kopf handlers: thin adapters from kopf's callbacks to reconcile.py.

Children are applied on create, update and resume (the fast path), when one of
them is edited or deleted (drift), and at every evaluation (the level-based
path). A timer ticks every few seconds and evaluates each model whose
evaluation interval has passed or whose spec changed since its last evaluation.
Everything that touches one model holds that model's lock, so a drift repair
never interleaves with an evaluation that is rolling back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import kopf
from equiguard.contracts import names
from equiguard.contracts.model import read_model
from equiguard.contracts.status import PriorStatus, parse_time
from equiguard.kube import Kube, Rejected, Transient
from equiguard.operator.metrics import OperatorMetrics
from equiguard.operator.reconcile import (
    AppliedChildren,
    Settings,
    apply_children,
    reconcile_model,
)
from equiguard.operator.references import REFERENCES
from equiguard.operator.rhythm import next_evaluation, phase_of
from equiguard.operator.serving import plan_serving

GROUP, VERSION, PLURAL = "equiguard.io", "v1alpha1", "clinicalmodels"
RESOURCE = (GROUP, VERSION, PLURAL)
CHILD_LABELS = {"app.kubernetes.io/managed-by": "equiguard"}
log = logging.getLogger("equiguard.operator")
# Requests to sidecars under way at once, over all models; more wait their turn.
SIDECAR_CONNECTIONS = 256


@dataclass
class Runtime:
    kube: Kube
    settings: Settings
    metrics: OperatorMetrics
    tick: float
    locks: defaultdict[tuple[str, str], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    applied: AppliedChildren = field(default_factory=AppliedChildren)
    workers: int = 16
    # The sidecars' connections, opened at startup and shared by every evaluation.
    sidecars: aiohttp.ClientSession | None = None


def is_due(body: Mapping[str, Any], now: datetime, tick: float) -> bool:
    """An evaluation is due when the spec changed or the model's next slot has (nearly) come."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return True
    last = status.get("lastEvaluationTime")
    if not last:
        return True
    interval = read_model(body).pacing.interval
    phase = phase_of(body["metadata"].get("uid") or body["metadata"]["name"], interval)
    # Half a tick early rather than half a tick late: evaluations stay on their phase.
    due = next_evaluation(parse_time(last), interval, phase) - timedelta(seconds=tick / 2)
    return now >= due


def child_drifted(event: Mapping[str, Any]) -> bool:
    """A child was deleted, or a Deployment's spec changed (its generation moved ahead)."""
    if event.get("type") == "DELETED":
        return True
    body = event.get("object") or {}
    if body.get("kind") != "Deployment":
        return False
    observed = (body.get("status") or {}).get("observedGeneration")
    return observed is not None and body["metadata"].get("generation") != observed


def _key(body: Mapping[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


async def _apply(runtime: Runtime, body: Mapping[str, Any]) -> None:
    model = read_model(body)
    prior = PriorStatus.read(body.get("status"))
    annotations = body["metadata"].get("annotations") or {}
    plan = plan_serving(
        model, prior, annotations.get(names.RETRY_ANNOTATION, ""), runtime.settings.images
    )
    try:
        applied = await asyncio.to_thread(
            apply_children, runtime.kube, body, model, plan.revision, runtime.settings,
            datetime.now(UTC), runtime.applied, True,
        )  # fmt: skip
    except Transient as error:
        raise kopf.TemporaryError(f"children not applied yet: {error}", delay=10) from error
    if applied.error:
        # Not retried here: the next evaluation reports it in the Ready condition.
        log.warning("%s/%s: %s", model.namespace, model.name, applied.error)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Registers the handlers for one operator instance."""

    @kopf.on.startup(registry=registry)
    async def threads(**_: Any) -> None:
        # API calls run in threads; the default pool (CPUs + 4) queues them at scale.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=runtime.workers, thread_name_prefix="equiguard-api")
        )
        runtime.sidecars = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=SIDECAR_CONNECTIONS)
        )

    @kopf.on.cleanup(registry=registry)
    async def close_sidecars(**_: Any) -> None:
        if runtime.sidecars is not None:
            await runtime.sidecars.close()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the API module: in-cluster, else KUBECONFIG.
        credentials: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return credentials

    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    @kopf.on.resume(*RESOURCE, registry=registry)
    async def apply(body: kopf.Body, **_: Any) -> None:
        async with runtime.locks[_key(body)]:
            await _apply(runtime, body)

    @kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS, registry=registry)
    @kopf.on.event("", "v1", "services", labels=CHILD_LABELS, registry=registry)
    @kopf.on.event("", "v1", "configmaps", labels=CHILD_LABELS, registry=registry)
    async def restore(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        namespace = body["metadata"]["namespace"]
        model = (body["metadata"].get("labels") or {}).get(names.MODEL_LABEL)
        if not model or not child_drifted(event):
            return
        async with runtime.locks[(namespace, model)]:
            owner = await asyncio.to_thread(
                runtime.kube.get, f"{GROUP}/{VERSION}", "ClinicalModel", namespace, model
            )
            if owner is None or owner["metadata"].get("deletionTimestamp"):
                return  # the model is gone: its children follow it
            await _apply(runtime, owner)

    @kopf.timer(*RESOURCE, interval=runtime.tick, registry=registry)
    async def reconcile_timer(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        namespace, name = _key(body)
        now = datetime.now(UTC)
        if not is_due(body, now, runtime.tick):
            return
        async with runtime.locks[(namespace, name)]:
            try:
                # kopf's copy comes from the watch, which can go silent without an
                # error: the evaluation reads the model afresh, so that an edit, and
                # the status the last evaluation wrote, always count.
                fresh = await asyncio.to_thread(
                    runtime.kube.get, f"{GROUP}/{VERSION}", "ClinicalModel", namespace, name
                )
                if (
                    fresh is None
                    or fresh["metadata"].get("deletionTimestamp")
                    or not is_due(fresh, now, runtime.tick)
                ):
                    return
                done = await reconcile_model(
                    runtime.kube, fresh, now, runtime.settings, runtime.applied, runtime.sidecars
                )
            except Transient as error:
                raise kopf.TemporaryError(
                    f"evaluation postponed: {error}", delay=runtime.tick
                ) from error
            except Rejected as error:
                # A record, Job or status refused: a defect, not a spec problem; retry slowly.
                raise kopf.TemporaryError(f"the API server refused: {error}", delay=60) from error
        runtime.metrics.observe_duration((datetime.now(UTC) - now).total_seconds())
        if done.plan.lifted_quarantine:
            patch.metadata.annotations[names.RETRY_ANNOTATION] = None
        runtime.metrics.observe(
            namespace,
            name,
            {slo["name"]: slo["verdict"] for slo in done.decision.status["slos"]},
            now.timestamp() if done.pods else None,
            [
                (record.decision, record.dry_run)
                for record in done.decision.records
                if record.decision in ("Rollback", "Recalibrate")
            ],
            done.decision.status.get("earlyWarning"),
        )

    @kopf.on.delete(*RESOURCE, optional=True, registry=registry)
    def forget(body: kopf.Body, **_: Any) -> None:
        runtime.metrics.forget(*_key(body))
        runtime.locks.pop(_key(body), None)
        runtime.applied.forget(_key(body))
        REFERENCES.forget(_key(body))

    @kopf.on.probe(id="models", registry=registry)
    def models(**_: Any) -> int:
        return runtime.metrics.model_count()
