"""Gathering what an evaluation judges: the ready pods, and the early warning's inputs.

The early warning reads, from every ready pod of the serving revision, the
score statistics of the epochs of its window (GET /v1/scores) and the
reference's labelled statistics over its reference window (GET
/v1/stats?revision=, the last good revision's, or the serving one's own
until a revision has qualified). A pod that does not answer makes the
warning Unavailable, never a verdict on part of the data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import PriorStatus
from equiguard.engine.early_warning import assess
from equiguard.engine.monitoring import DEFAULT_PLAN, epoch_spans
from equiguard.kube import Kube
from equiguard.operator.early_warning import (
    WarningResult,
    reference_for,
    unavailable_warning,
    warning_result,
    watched_of,
)
from equiguard.operator.gather import PodTarget, gather, gather_scores
from equiguard.operator.references import REFERENCES, ReferenceKeeper


def ready_pods(pods: list[dict[str, Any]], revision: str) -> list[PodTarget]:
    """The pods of `revision` that are Ready, have an address and are not terminating."""
    ready = []
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        if (meta.get("annotations") or {}).get(names.REVISION_ANNOTATION) != revision:
            continue
        if meta.get("deletionTimestamp") or not status.get("podIP"):
            continue
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        if conditions.get("Ready") == "True":
            ready.append(PodTarget(meta["name"], status["podIP"]))
    return ready


async def early_warning_of(
    kube: Kube,
    model: ClinicalModel,
    prior: PriorStatus,
    revision: str,
    now: datetime,
    timeout: float,
    references: ReferenceKeeper = REFERENCES,
) -> WarningResult | None:
    """The serving revision's early warning, or None when the model declares none."""
    declared = model.early_warning
    if declared is None:
        return None
    reference = reference_for(prior.revisions, revision, declared.reference_window_seconds)
    listed = await asyncio.to_thread(
        kube.list, "v1", "Pod", model.namespace, names.selector_labels(model.name)
    )
    pods = ready_pods(listed, revision)
    if not pods:
        return unavailable_warning(
            revision, reference, "NoReadyPods", f"No ready pod serves {revision}."
        )
    secret = model.spec["outcomes"]["tokenSecret"]
    key = secret.get("key", "token")
    token = await asyncio.to_thread(kube.secret_value, model.namespace, secret["name"], key)
    if not token:
        return unavailable_warning(
            revision, reference, "StatisticsUnavailable",
            f"The Secret {secret['name']} has no key {key}; the sidecars cannot be read.",
        )  # fmt: skip
    spans = epoch_spans(now.timestamp(), declared.window_seconds, DEFAULT_PLAN)
    scores, labelled = await asyncio.gather(
        gather_scores(pods, spans, revision, token, timeout),
        gather(pods, (reference.window_seconds,), reference.revision, token, timeout),
    )
    for found, what in ((scores, "score statistics"), (labelled, "reference statistics")):
        if not found.statistics:
            return unavailable_warning(
                revision, reference, "StatisticsUnavailable",
                f"The {what} are unavailable: {found.problem}.",
            )  # fmt: skip
    kept = references.read(
        (model.namespace, model.name),
        reference.revision,
        reference.window_seconds,
        labelled.statistics[reference.window_seconds],
    )
    try:
        assessment = assess(
            [scores.statistics[span] for span in spans],
            kept,
            declared.signals,
            watched_of(model),
            declared.false_alarm_rate,
            declared.window_seconds,
            DEFAULT_PLAN,
            min_outcomes=declared.min_outcomes,
        )
    except ValueError as error:
        # Cells, threshold or bins that differ: a sidecar on another spec generation.
        return unavailable_warning(
            revision, reference, "StatisticsMismatch",
            f"The scores and the reference cannot be compared: {error}.",
        )  # fmt: skip
    return warning_result(model, assessment, revision, reference)


async def all_of(*steps: Awaitable[Any]) -> list[Any]:
    """Every step's result once all have finished; the first failure, if any, raised.

    Unlike a bare `asyncio.gather`, no step is left running unawaited when
    another fails, so a failed evaluation never overlaps the next one.
    """
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return list(outcomes)
