"""The early warning's step of `decide` and its status block (pure).

A warning starts an episode: an `EarlyWarning` record with its evidence (and
its Event), a condition, and an entry in `status.earlyWarning.open` naming
the labelled SLOs that will judge it. When it ends (an assessment is Clear
again; an Unavailable one neither ends nor restarts it), an
`EarlyWarningCleared` record. When one of those SLOs reaches a labelled verdict on the warned
revision, the labels supersede the estimate: an `EarlyWarningResolved`
record says whether the warning was borne out (an SLO Violated) or not (all
of them Met, each verdict reached after the warning began), and the tally
behind the precision of warnings counts it. Inconclusive decides nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from equiguard.contracts.early_warning_status import (
    EarlyWarningMemory,
    OpenWarning,
    WarningTally,
)
from equiguard.contracts.records import DecisionRecord, record_name
from equiguard.contracts.status import format_time
from equiguard.engine.verdict import Verdict
from equiguard.operator.draft import Draft, Observation
from equiguard.operator.early_warning import CLEAR, WARNING, rollout_hold

# What the metric's `signal` label calls the watched estimates, beside the signals.
ESTIMATES = "estimates"
# Warnings kept waiting for labels; the oldest beyond this are dropped undecided.
OPEN_LIMIT = 10


def note_early_warning(obs: Observation, draft: Draft) -> Draft:
    """Records a warning's start and end and the labelled verdicts that decide it."""
    current = obs.early_warning
    if obs.model.early_warning is None or current is None:
        return draft
    memory = EarlyWarningMemory.read(obs.prior.early_warning)
    still_open, tally = [], memory.tally
    for warning in memory.open:
        decided = _decided(obs, warning, draft.serving.bento)
        if decided is None:
            still_open.append(warning)
            continue
        borne_out, slo, verdict = decided
        tally = replace(
            tally, decided=tally.decided + 1, borne_out=tally.borne_out + int(borne_out)
        )
        draft = draft.recording(_resolution(warning, borne_out, slo, verdict, tally))
    since = memory.since if memory.state == current.state and memory.since else obs.now
    warning_since = memory.warning_since
    if current.state == WARNING and warning_since is None:
        record = DecisionRecord(
            decision="EarlyWarning",
            reason="EarlyWarningRaised",
            message=current.message
            + (" " + rollout_hold(obs.model, current).message if _holds(obs) else ""),
            identity=(current.revision, memory.state, _time(memory.since)),
            revision=current.revision,
            early_warning=current.evidence(),
        )
        draft = draft.recording(record)
        name = record_name(obs.model, record)
        still_open.append(OpenWarning(current.revision, obs.now, current.slos, name))
        tally = replace(tally, raised=tally.raised + 1)
        warning_since = obs.now
    elif current.state == CLEAR and warning_since is not None:
        draft = draft.recording(
            DecisionRecord(
                decision="EarlyWarningCleared",
                reason="EarlyWarningCleared",
                message=f"The early warning on {current.revision} since "
                f"{format_time(warning_since)} ended: {current.message}",
                identity=(current.revision, format_time(warning_since)),
                revision=current.revision,
            )
        )
        warning_since = None
    kept = tuple(still_open[-OPEN_LIMIT:])
    memory = EarlyWarningMemory(current.state, since, warning_since, kept, tally)
    return replace(draft, early_warning=memory)


def _holds(obs: Observation) -> bool:
    return rollout_hold(obs.model, obs.early_warning).holding


def _time(moment: datetime | None) -> str:
    return format_time(moment) if moment is not None else ""


def _decided(obs: Observation, warning: OpenWarning, serving: str) -> tuple[bool, str, str] | None:
    """(borne out, the deciding SLO, its verdict) once labels decide the warning, else None."""
    if warning.revision != serving:
        return None  # its revision does not serve: no verdict of it comes in
    results = {r.name: r for r in obs.results if r.name in warning.slos}
    violated = [name for name, r in results.items() if r.verdict == Verdict.VIOLATED]
    if violated:
        return True, violated[0], str(Verdict.VIOLATED)
    if not results or set(results) != set(warning.slos):
        return None

    def met_after_warning(name: str) -> bool:
        if results[name].verdict != Verdict.MET:
            return False
        before = obs.prior.slo(name)
        # A Met that held already when the warning began (or began with it) rests on
        # older outcomes.
        same_run = before is not None and before.verdict == Verdict.MET
        return not same_run or (before is not None and before.since > warning.since)

    if all(met_after_warning(name) for name in warning.slos):
        return False, warning.slos[0], str(Verdict.MET)
    return None


def _resolution(
    warning: OpenWarning, borne_out: bool, slo: str, verdict: str, tally: WarningTally
) -> DecisionRecord:
    precision = tally.precision
    how = "borne out" if borne_out else "not borne out"
    return DecisionRecord(
        decision="EarlyWarningResolved",
        reason="WarningBorneOut" if borne_out else "WarningNotBorneOut",
        message=f"The early warning on {warning.revision} since {format_time(warning.since)} "
        f"was {how}: SLO {slo} is {verdict} on labelled outcomes. Precision of warnings "
        f"so far: {tally.borne_out} of {tally.decided}"
        + (f" ({precision:.0%})." if precision is not None else "."),
        identity=(warning.record,),
        slo=slo,
        verdict=verdict,
        revision=warning.revision,
        early_warning={
            "warningRecord": warning.record,
            "raisedAt": format_time(warning.since),
            "borneOut": borne_out,
            "slos": list(warning.slos),
        },
    )


def warning_status(obs: Observation, draft: Draft) -> dict[str, Any] | None:
    """`status.earlyWarning`, or None when the model declares none."""
    current, memory = obs.early_warning, draft.early_warning
    if obs.model.early_warning is None or current is None or memory is None:
        return None
    labelled = {r.name: str(r.verdict) for r in obs.results if r.verdict != Verdict.INCONCLUSIVE}
    estimates = [
        {**e, "labelledVerdict": labelled[e["slo"]]} if e.get("slo") in labelled else dict(e)
        for e in current.estimates
    ]
    hold = rollout_hold(obs.model, current)
    declared = obs.model.early_warning
    watching = [*declared.signals, *([ESTIMATES] if declared.estimates else [])]
    fired = {s["signal"] for s in current.signals}
    fired |= {ESTIMATES} if any(e.get("breached") for e in current.estimates) else set()
    out: dict[str, Any] = {
        "state": current.state,
        "reason": current.reason,
        "message": current.message,
        "since": _time(memory.since),
        # None, not absent: status is merge-patched, and an absent key would stay.
        "warningSince": _time(memory.warning_since) or None,
        "revision": current.revision,
        "action": declared.action,
        "watching": watching,
        "firing": [kind for kind in watching if kind in fired],
        "holdingRollout": hold.holding,
        "reference": current.reference.write(),
        "signalsFired": current.signals_fired,
        "signals": [dict(s) for s in current.signals],
        "estimates": estimates,
        "open": [w.write() for w in memory.open],
        "warnings": memory.tally.write(),
        "holdMessage": hold.message if hold.holding else None,
    }
    return out
