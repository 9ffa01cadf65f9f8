"""One reconciliation of a ClinicalModel: gather, decide, act.

`apply_children` makes the Deployment, Service, ConfigMap and PrometheusRule
match the spec (server-side apply, so drift is undone); `reconcile_model`
gathers the serving revision's statistics, asks the engine for verdicts and
`decide` for the consequences, then carries them out. Only `kube` talks to the
API server; the clock is read by the caller.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import kopf
from equiguard.contracts import names
from equiguard.contracts.approval import read_approval
from equiguard.contracts.model import ClinicalModel, read_model
from equiguard.contracts.recalibration_result import RecalibrationResult, result_name
from equiguard.contracts.records import DecisionRecord, build_decision
from equiguard.contracts.status import PriorStatus
from equiguard.engine.spec import SpecError, parse_model
from equiguard.kube import Kube, Rejected, Transient
from equiguard.operator import alerts, manifests, recalibration_job
from equiguard.operator.decide import Decision, decide
from equiguard.operator.draft import Observation, SloResult
from equiguard.operator.evaluation import all_of, early_warning_of, ready_pods
from equiguard.operator.gather import gather
from equiguard.operator.manifests import Images, Revision
from equiguard.operator.promotion import RecalibrationRun, replaceable
from equiguard.operator.serving import ServingPlan, plan_serving
from equiguard.operator.verdicts import slo_results, spans, unavailable

log = logging.getLogger("equiguard.operator")


@dataclass(frozen=True)
class Settings:
    images: Images
    runbook_base: str = alerts.DEFAULT_RUNBOOK_BASE
    job_service_account: str = "equiguard-recalibration"
    stats_timeout: float = 10.0


@dataclass(frozen=True)
class Applied:
    """What applying the children showed: the Deployment's readiness, or why it failed."""

    ready: bool
    message: str
    error: str = ""
    reason: str = "ChildRejected"


def _owned(child: dict[str, Any], owner: Mapping[str, Any]) -> dict[str, Any]:
    kopf.adopt(child, owner=owner)  # type: ignore[arg-type]
    return child


def deployment_readiness(deployment: Mapping[str, Any], revision: str) -> Applied:
    """Whether every replica of the Deployment runs `revision` and is available."""
    spec, status = deployment.get("spec", {}), deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    template = spec.get("template", {}).get("metadata", {}).get("annotations", {})
    generation = int(deployment.get("metadata", {}).get("generation", 0))
    current = (
        template.get(names.REVISION_ANNOTATION) == revision
        and int(status.get("observedGeneration", 0)) >= generation
    )
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if current and updated >= wanted and available >= wanted and total == updated:
        return Applied(True, f"{available} of {wanted} pods of {revision} are available.")
    return Applied(
        False,
        f"{min(updated, available)} of {wanted} pods of {revision} are "
        f"available; the rollout is in progress.",
    )


class AppliedChildren:
    """What was last applied for each model, so unchanged children are not re-sent.

    Drift is repaired on the children's own events (handlers.py); a full apply
    still happens when the desired children change, when the Deployment is
    missing, after an apply that failed, and at least every `period` seconds,
    which keeps reconciliation level-based without four server-side applies
    per model and evaluation.
    """

    def __init__(self, period: float = 600.0) -> None:
        self.period = period
        self._applied: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def fresh(self, key: tuple[str, str], digest: str, now: float) -> bool:
        with self._lock:
            last = self._applied.get(key)
        return last is not None and last[0] == digest and now - last[1] < self.period

    def remember(self, key: tuple[str, str], digest: str, now: float) -> None:
        with self._lock:
            self._applied[key] = (digest, now)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._applied.pop(key, None)


def apply_children(
    kube: Kube,
    body: Mapping[str, Any],
    model: ClinicalModel,
    serving: Revision,
    settings: Settings,
    now: datetime,
    applied_before: AppliedChildren | None = None,
    force: bool = False,
) -> Applied:
    """Applies ConfigMap, Service, Deployment (serving `serving`) and, if served, PrometheusRule.

    With `applied_before`, children identical to the last apply are only read
    back (the Deployment, for its readiness) instead of applied again, unless
    `force` (a child drifted or the spec changed).
    """
    configmap = manifests.build_configmap(model)
    children = [
        configmap,
        manifests.build_service(model),
        manifests.build_deployment(
            model, serving, settings.images, manifests.config_hash(configmap)
        ),
    ]
    if kube.has_api("monitoring.coreos.com/v1", "PrometheusRule"):
        children.append(alerts.build_prometheus_rule(model, settings.runbook_base))
    owned = [_owned(child, body) for child in children]
    key, when = (model.namespace, model.name), now.timestamp()
    digest = hashlib.sha256(json.dumps(owned, sort_keys=True).encode()).hexdigest()
    if applied_before is not None:
        if not force and applied_before.fresh(key, digest, when):
            current = kube.get("apps/v1", "Deployment", model.namespace, model.name)
            if current is not None:
                return deployment_readiness(current, serving.bento)
        # Until this apply succeeds, nothing counts as applied: a drift repair
        # that fails midway is then completed by the next evaluation.
        applied_before.forget(key)
    deployment: dict[str, Any] = {}
    try:
        for child in owned:
            applied = kube.apply(child)
            if child["kind"] == "Deployment":
                deployment = applied
    except Rejected as error:
        return Applied(False, "", f"The API server refused a child object: {error}")
    if applied_before is not None:
        applied_before.remember(key, digest, when)
    return deployment_readiness(deployment, serving.bento)


async def _results(
    kube: Kube,
    body: Mapping[str, Any],
    model: ClinicalModel,
    prior: PriorStatus,
    revision: str,
    now: datetime,
    settings: Settings,
    session: aiohttp.ClientSession | None = None,
) -> tuple[tuple[SloResult, ...], int]:
    """The verdicts of every SLO on the summed statistics of the revision's ready pods."""
    spec = parse_model(body)
    secret = model.spec["outcomes"]["tokenSecret"]
    # Two independent reads, one round trip's wait.
    listed, token = await all_of(
        asyncio.to_thread(
            kube.list, "v1", "Pod", model.namespace, names.selector_labels(model.name)
        ),
        asyncio.to_thread(
            kube.secret_value, model.namespace, secret["name"], secret.get("key", "token")
        ),
    )
    pods = ready_pods(listed, revision)
    if not pods:
        return unavailable(spec, "NoReadyPods", f"No ready pod serves {revision}."), 0
    if not token:
        return unavailable(
            spec,
            "StatisticsUnavailable",
            f"The Secret {secret['name']} has no key {secret.get('key', 'token')}; "
            f"the sidecars' statistics cannot be read.",
        ), 0
    gathered = await gather(
        pods, spans(spec, now.timestamp()), revision, token, settings.stats_timeout, session
    )
    if not gathered.statistics:
        return unavailable(
            spec, "StatisticsUnavailable", f"Statistics unavailable: {gathered.problem}."
        ), 0
    states = {slo.name: slo.state for slo in prior.slos if slo.revision == revision and slo.state}
    # Judging takes milliseconds of CPU (the disclosure check above all): in a
    # thread, the event loop meanwhile reads the other evaluations' answers.
    results = await asyncio.to_thread(
        slo_results, spec, gathered.statistics, states, now.timestamp(), gathered.pods
    )
    return results, gathered.pods


def _act(
    kube: Kube,
    body: Mapping[str, Any],
    model: ClinicalModel,
    plan: ServingPlan,
    decision: Decision,
    settings: Settings,
    now: datetime,
) -> None:
    """Carries out a decision in the order that survives a crash at any step.

    Jobs and records first (deterministic names: a replay finds them), then the
    status (the memory of what was done), then the rollback itself (the next
    evaluation re-applies whatever the status says is served).
    """
    for slo in decision.jobs:
        job = recalibration_job.build_recalibration_job(
            model,
            plan.revision,
            slo,
            settings.images,
            until=now,
            service_account=settings.job_service_account,
        )
        name = job["metadata"]["name"]
        kube.apply(_owned(recalibration_job.build_recalibration_manifest(model, name), body))
        kube.create_if_absent(_owned(job, body))
    for record in decision.records:
        _write_record(kube, body, model, record, now)
    kube.patch_status(body, decision.status)
    if decision.serving != plan.revision:
        configmap = manifests.build_configmap(model)
        deployment = manifests.build_deployment(
            model, decision.serving, settings.images, manifests.config_hash(configmap)
        )
        kube.apply(_owned(deployment, body))


def _write_record(
    kube: Kube,
    body: Mapping[str, Any],
    model: ClinicalModel,
    record: DecisionRecord,
    now: datetime,
) -> None:
    manifest = build_decision(model, record, now)
    if model.keep_records:
        manifest["metadata"]["namespace"] = model.namespace
    else:
        _owned(manifest, body)
    name = manifest["metadata"]["name"]
    if kube.create_if_absent(manifest):
        log.info("%s/%s: %s %s", model.namespace, model.name, record.reason, name)
    # Named after its record, so a replay after a crash posts the Event at most once.
    try:
        kube.post_event(body, record.event_type, record.reason, record.message, name)
    except (Transient, Rejected) as error:
        log.warning(
            "%s/%s: the %s Event was not posted (the record %s holds it): %s",
            model.namespace,
            model.name,
            record.reason,
            name,
            error,
        )


def job_state(job: Mapping[str, Any]) -> tuple[str, str]:
    """Running, Complete or Failed, and the failure's message."""
    for item in (job.get("status") or {}).get("conditions") or []:
        if item.get("status") == "True" and item.get("type") in ("Complete", "Failed"):
            return item["type"], item.get("message") or item.get("reason") or ""
    return "Running", ""


def _recalibration_runs(
    kube: Kube, model: ClinicalModel, jobs: list[dict[str, Any]], sources: tuple[str, ...]
) -> tuple[RecalibrationRun, ...]:
    """The model's recalibration Jobs; the result of each finished one for `sources` (the
    serving revision and, while it is a fallback, the quarantined revision it replaces)."""
    runs = []
    for job in jobs:
        meta = job["metadata"]
        revision = (meta.get("annotations") or {}).get(names.REVISION_ANNOTATION, "")
        state, failure = job_state(job)
        result = None
        if state != "Running" and revision in sources:
            found = kube.get("v1", "ConfigMap", model.namespace, result_name(meta["name"]))
            if found is not None:
                result = RecalibrationResult.read(found.get("data") or {})
        runs.append(RecalibrationRun(
            job=meta["name"], revision=revision,
            slo=(meta.get("labels") or {}).get(names.SLO_LABEL, ""),
            state=state, failure=failure, result=result,
        ))  # fmt: skip
    return tuple(runs)


@dataclass(frozen=True)
class Reconciled:
    """A decision already acted on and written into status."""

    decision: Decision
    plan: ServingPlan
    pods: int  # pods whose statistics were summed (0: none could be read)


async def reconcile_model(
    kube: Kube,
    body: Mapping[str, Any],
    now: datetime,
    settings: Settings,
    applied_before: AppliedChildren | None = None,
    session: aiohttp.ClientSession | None = None,
) -> Reconciled:
    """One evaluation of a ClinicalModel, from gathering to acting.

    `session`: the connections to the sidecars, kept from one evaluation to the next.
    """
    model = read_model(body)
    prior = PriorStatus.read(body.get("status"))
    retry = (body["metadata"].get("annotations") or {}).get(names.RETRY_ANNOTATION, "")
    plan = plan_serving(model, prior, retry, settings.images)

    async def verdicts() -> tuple[tuple[SloResult, ...], int, str]:
        try:
            results, pods = await _results(
                kube, body, model, prior, plan.revision.bento, now, settings, session
            )
        except SpecError as error:
            return (), 0, f"The spec cannot be evaluated: {error}"
        return results, pods, ""

    # The children are applied first, alone: every change an evaluation makes
    # happens in one order, so an operator killed between two of them resumes
    # from what the API server holds (tests/faults). The reads after it (the
    # statistics, the scores, the Jobs) depend on none of each other: waited
    # for together, they take the time of the slowest, not their sum.
    applied = await asyncio.to_thread(
        apply_children, kube, body, model, plan.revision, settings, now, applied_before
    )
    (results, pods, spec_error), warning, jobs = await all_of(
        verdicts(),
        early_warning_of(kube, model, prior, plan.revision.bento, now, settings.stats_timeout),
        asyncio.to_thread(
            kube.list,
            "batch/v1",
            "Job",
            model.namespace,
            {names.MODEL_LABEL: model.name, names.COMPONENT_LABEL: "recalibration"},
        ),
    )
    if spec_error:
        applied = Applied(False, "", spec_error, "InvalidSpec")
    sources = replaceable(model.bento, plan.revision.bento, prior.revisions)
    runs = await asyncio.to_thread(_recalibration_runs, kube, model, jobs, sources)
    decision = decide(
        Observation(
            model=model,
            prior=prior,
            plan=plan,
            deployment_ready=applied.ready,
            deployment_message=applied.message,
            pods=pods,
            results=results,
            existing_jobs=frozenset(job["metadata"]["name"] for job in jobs),
            now=now,
            apply_error=applied.error,
            apply_reason=applied.reason,
            recalibrations=runs,
            approval=read_approval(body["metadata"]),
            early_warning=warning,
        )
    )
    await asyncio.to_thread(_act, kube, body, model, plan, decision, settings, now)
    return Reconciled(decision, plan, pods)
