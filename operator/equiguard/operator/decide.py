"""The operator's decision: one evaluation in, the next status, records and Jobs out.

`decide` runs a chain of small pure steps over an immutable draft (`draft.Draft`):
each step takes what the handler observed and the draft so far, and returns
the draft with its part done. The order is the list `CHAIN`. Nothing here
reads a clock or talks to the API server: handlers gather and act.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.records import DecisionRecord
from equiguard.contracts.status import (
    SloStatus,
    format_precise_time,
    format_time,
    read_number,
    write_number,
)
from equiguard.engine.comparison import Comparison
from equiguard.engine.verdict import Verdict
from equiguard.operator.actions import act_on_violations
from equiguard.operator.conditions import conditions
from equiguard.operator.draft import Draft, Observation, SloResult, Step, run_chain
from equiguard.operator.follow import follow_recalibration
from equiguard.operator.history import note_revision_not_applied, note_served, qualify
from equiguard.operator.manifests import Revision
from equiguard.operator.serving import last_good
from equiguard.operator.warnings import note_early_warning, warning_status

# Inconclusive reasons that say the operator could not read statistics at all,
# as opposed to the engine finding too few labelled samples in a group.
GATHER_REASONS = frozenset({"NoReadyPods", "StatisticsUnavailable"})


@dataclass(frozen=True)
class Decision:
    serving: Revision
    jobs: tuple[str, ...]  # SLOs whose recalibration Job (for the observed revision) to create
    records: tuple[DecisionRecord, ...]
    status: dict[str, Any]


def note_verdict_changes(obs: Observation, draft: Draft) -> Draft:
    """A record for each SLO whose verdict changed (an Alert for an alerting SLO's breach)."""
    by_action = {slo.name: slo.action for slo in obs.model.slos}
    for result in obs.results:
        before = obs.prior.slo(result.name)
        if before is None and result.verdict == Verdict.INCONCLUSIVE:
            continue  # the first look at a new SLO: no change to report
        if before is not None and before.verdict == result.verdict:
            continue
        into_alert = result.verdict == Verdict.VIOLATED and by_action.get(result.name) == "Alert"
        since = format_time(before.since) if before is not None else ""
        previous = before.verdict if before is not None else ""
        draft = draft.recording(
            DecisionRecord(
                decision="Alert" if into_alert else "VerdictChanged",
                reason=_verdict_reason(result),
                message=f"SLO {result.name} is {result.verdict}"
                + (f" (was {previous})" if previous else "")
                + f": {result.message}",
                identity=(result.name, previous, result.verdict, since),
                slo=result.name,
                verdict=result.verdict,
                previous_verdict=previous,
                revision=draft.serving.bento,
                evidence=result.evidence,
            )
        )
    return draft


CHAIN: tuple[Step, ...] = (
    note_served,
    note_verdict_changes,
    note_early_warning,
    follow_recalibration,
    act_on_violations,
    qualify,
    note_revision_not_applied,
)


def decide(obs: Observation) -> Decision:
    """The next status, records, rollback target and Jobs for one evaluation."""
    draft = run_chain(CHAIN, obs, Draft.start(obs))
    statuses = slo_statuses(obs, draft)
    good = last_good(draft.revisions, exclude="")
    met = sum(status.verdict == Verdict.MET for status in statuses)
    status: dict[str, Any] = {
        "observedGeneration": obs.model.generation,
        "conditions": [c.write() for c in conditions(obs, draft)],
        "servingRevision": draft.next_serving.bento,
        "desiredRevision": obs.model.bento,
        "lastGoodRevision": good.revision if good is not None else "",
        "sloSummary": f"{met}/{len(obs.model.slos)}",
        "worstGap": _worst_gap(obs.model, statuses, obs.results),
        "outcomesNeeded": _outcomes_needed(statuses),
        "lastAction": draft.last_action,
        "lastEvaluationTime": format_precise_time(obs.now),
        "slos": [s.write() for s in statuses],
        "revisions": [r.write() for r in draft.revisions],
        "actions": [a.write() for a in draft.actions],
    }
    warning = warning_status(obs, draft)
    if warning is not None:
        status["earlyWarning"] = warning
    elif obs.prior.early_warning:
        status["earlyWarning"] = None  # declared no more: the merge patch removes it
    return Decision(draft.next_serving, draft.jobs, draft.records, status)


def slo_statuses(obs: Observation, draft: Draft) -> list[SloStatus]:
    """Each SLO's status: its verdict, since when it holds on this revision, what waits."""
    statuses = []
    for result in obs.results:
        before = obs.prior.slo(result.name)
        same_run = (
            before is not None
            and before.verdict == result.verdict
            and before.revision == draft.serving.bento
        )
        statuses.append(
            SloStatus(
                name=result.name,
                verdict=result.verdict,
                reason=result.reason,
                message=result.message,
                since=before.since if same_run and before is not None else obs.now,
                revision=draft.serving.bento,
                breaches=result.breaches,
                worst_group=result.worst_group,
                estimate=result.estimate,
                lower=result.lower,
                upper=result.upper,
                held_back=draft.held_back_of(result.name),
                state=result.state,
                outcomes_needed=(
                    result.outcomes_needed if result.verdict == Verdict.INCONCLUSIVE else None
                ),
            )
        )
    return statuses


def _verdict_reason(result: SloResult) -> str:
    if result.verdict == Verdict.VIOLATED:
        return "SLOViolated"
    if result.verdict == Verdict.MET:
        return "SLOMet"
    return result.reason if result.reason in GATHER_REASONS else "InsufficientSubgroupData"


def _outcomes_needed(statuses: list[SloStatus]) -> str:
    """Each undecided SLO's outcomes still needed per group, for `kubectl get`."""
    return ", ".join(
        f"{status.name} +{status.outcomes_needed}"
        for status in statuses
        if status.outcomes_needed is not None and status.outcomes_needed > 0
    )


def _worst_gap(
    model: ClinicalModel, statuses: list[SloStatus], results: tuple[SloResult, ...] = ()
) -> str:
    """The largest estimated disparity of any SLO, ranked on the engine's scale (how far
    past its threshold, logs for ratios): each SLO's largest gap, not its decisive one."""
    by_name = {slo.name: slo for slo in model.slos}
    largest = {r.name: _largest_estimate(r.evidence) for r in results}
    scored: list[tuple[float, float, str]] = []
    for status in statuses:
        slo = by_name.get(status.name)
        estimate = largest.get(status.name)
        if estimate is None:
            estimate = status.estimate
        if slo is None or estimate is None:
            continue
        compared = Comparison(slo.comparison, float(slo.threshold))
        scored.append((compared.distance_past(estimate), estimate, status.name))
    if not scored:
        return ""
    _, estimate, name = max(scored, key=lambda item: item[0])
    return f"{write_number(estimate)} ({name})"


def _largest_estimate(evidence: Mapping[str, Any]) -> float | None:
    largest = evidence.get("largestGap")
    return read_number(largest.get("estimate")) if isinstance(largest, Mapping) else None
