"""kopf handlers: thin adapters from kopf's callbacks to reconcile.py.

Children are applied on create, update and resume (the fast path) and again at
every evaluation (the level-based path that also undoes drift). A timer ticks
every few seconds and evaluates each model whose evaluation interval has passed
or whose spec changed since the last evaluation.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from equiguard.operator import names
from equiguard.operator.decide import plan_serving
from equiguard.operator.kube import Kube, Rejected, Transient
from equiguard.operator.metrics import OperatorMetrics
from equiguard.operator.model import read_model
from equiguard.operator.reconcile import Settings, apply_children, evaluate_model
from equiguard.operator.state import PriorStatus, parse_time

RESOURCE = ("equiguard.io", "v1alpha1", "clinicalmodels")
log = logging.getLogger("equiguard.operator")


@dataclass(frozen=True)
class Runtime:
    kube: Kube
    settings: Settings
    metrics: OperatorMetrics
    tick: float


def is_due(body: kopf.Body, now: datetime, tick: float) -> bool:
    """An evaluation is due when the spec changed or the interval has (nearly) passed."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return True
    last = status.get("lastEvaluationTime")
    if not last:
        return True
    interval = read_model(body).pacing.interval
    # Half a tick early rather than half a tick late: evaluations stay near the interval.
    return now - parse_time(last) >= timedelta(seconds=interval - tick / 2)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """Registers the handlers for one operator instance."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the API module: in-cluster, else KUBECONFIG.
        credentials: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return credentials

    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    @kopf.on.resume(*RESOURCE, registry=registry)
    async def apply(body: kopf.Body, **_: Any) -> None:
        model = read_model(body)
        prior = PriorStatus.read(body.get("status"))
        annotations = body["metadata"].get("annotations") or {}
        plan = plan_serving(model, prior, annotations.get(names.RETRY_ANNOTATION, ""))
        try:
            applied = await asyncio.to_thread(
                apply_children, runtime.kube, body, model, plan.revision, runtime.settings
            )
        except Transient as error:
            raise kopf.TemporaryError(f"children not applied yet: {error}", delay=10) from error
        if applied.error:
            # Not retried here: the next evaluation reports it as the Ready condition.
            log.warning("%s/%s: %s", model.namespace, model.name, applied.error)

    @kopf.timer(*RESOURCE, interval=runtime.tick, registry=registry)
    async def evaluate(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        now = datetime.now(UTC)
        if not is_due(body, now, runtime.tick):
            return
        try:
            done = await evaluate_model(runtime.kube, body, now, runtime.settings)
        except Transient as error:
            raise kopf.TemporaryError(
                f"evaluation postponed: {error}", delay=runtime.tick
            ) from error
        except Rejected as error:
            # A record or Job refused: a defect, not a spec problem; retry slowly.
            raise kopf.TemporaryError(f"the API server refused: {error}", delay=60) from error
        patch.status.update(done.decision.status)
        if done.plan.lifted_quarantine:
            patch.metadata.annotations[names.RETRY_ANNOTATION] = None
        meta = body["metadata"]
        runtime.metrics.observe(
            meta["namespace"],
            meta["name"],
            {slo["name"]: slo["verdict"] for slo in done.decision.status["slos"]},
            now.timestamp() if done.pods else None,
            [
                (record.decision, record.dry_run)
                for record in done.decision.records
                if record.decision in ("Rollback", "Recalibrate")
            ],
        )

    @kopf.on.delete(*RESOURCE, optional=True, registry=registry)
    def forget(body: kopf.Body, **_: Any) -> None:
        runtime.metrics.forget(body["metadata"]["namespace"], body["metadata"]["name"])

    @kopf.on.probe(id="models", registry=registry)
    def models(**_: Any) -> int:
        return runtime.metrics.model_count()
