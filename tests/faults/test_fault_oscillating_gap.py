"""Fault: an equity gap that oscillates around its threshold for two simulated hours.

Every simulated minute the serving revision's TPR gap between two race groups
moves along a sine around the SLO's threshold, so the engine's verdict keeps
flipping between Violated, Inconclusive and Met. The operator's own pure
functions slo_results (operator.verdicts) and decide (operator.decide) on an
injected clock, carrying status from one evaluation to the next as the
operator does through the API server. What must hold: never two actions
within a cooldown, never more than a day's cap, and a verdict that keeps
flipping does act (so the pacing is what held it back).
"""

from __future__ import annotations

import copy
import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from equiguard.contracts.model import read_model
from equiguard.contracts.status import PriorStatus, RevisionRecord
from equiguard.engine.spec import parse_model
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.operator.decide import decide
from equiguard.operator.draft import Observation
from equiguard.operator.manifests import Images
from equiguard.operator.serving import plan_serving
from equiguard.operator.verdicts import slo_results, spans

EXAMPLE = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples/readmission/clinicalmodel.yaml").read_text()
)
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SIMULATED = timedelta(hours=2)
STEP = timedelta(minutes=1)
COOLDOWN = timedelta(minutes=30)
MAX_PER_DAY = 3
PERIOD_MINUTES = 17  # of the gap's oscillation: several flips within each cooldown
IMAGES = Images(sidecar="sidecar:1", job="operator:1", model="runtime:1")
V1, V2, V3 = "readmission:v1", "readmission:v2", "readmission:v3"
POSITIVES = 4000  # labelled positives per race group: tight intervals


def manifest(enforcement: str, action: str) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE)
    body["metadata"].update(namespace="clinic", uid="uid-1", generation=1)
    spec = body["spec"]
    spec["model"]["bento"] = V3
    spec["enforcement"] = enforcement
    spec["slos"] = [{**spec["slos"][0], "action": action, "consecutiveBreaches": 2}]
    spec["evaluation"] = {
        "interval": "1m",
        "qualificationPeriod": "1h",
        "cooldown": f"{int(COOLDOWN.total_seconds() // 60)}m",
        "maxActionsPerDay": MAX_PER_DAY,
    }
    spec["changeControl"] = {
        "methods": ["platt"],
        "maxRecalibrations": {"count": 5, "period": "7d"},
    }
    return body


def statistics(body: dict[str, Any], gap: float) -> Statistics:
    """Black patients' TPR `gap` below the other race groups' 0.85, many labelled positives
    in each group."""
    spec = parse_model(body)
    layout = CellLayout.from_spec(spec.subgroups)
    race: list[str] = []
    scores: list[float] = []
    tprs = {"White": 0.85, "Asian": 0.85, "Hispanic": 0.85, "Other": 0.85, "Black": 0.85 - gap}
    for group, tpr in tprs.items():
        caught = round(POSITIVES * tpr)
        race += [group] * POSITIVES
        scores += [0.9] * caught + [0.1] * (POSITIVES - caught)
    stats = Statistics.empty(layout.cells, spec.threshold)
    stats.update(
        layout.assign({"race": race}, len(race)), np.array(scores), np.ones(len(race), dtype=int)
    )
    return stats


def gap_at(minute: int) -> float:
    return 0.10 + 0.09 * math.sin(2 * math.pi * minute / PERIOD_MINUTES)


def revision(tag: str, qualified_days_ago: float | None) -> RevisionRecord:
    return RevisionRecord(
        revision=tag,
        image="runtime:1",
        generation=1,
        first_served=START - timedelta(days=3),
        last_served=START - timedelta(minutes=1),
        met_since=None,
        qualified_at=START - timedelta(days=qualified_days_ago)
        if qualified_days_ago is not None
        else None,
        quarantined_at=None,
        quarantine_reason="",
    )


@pytest.mark.parametrize(
    ("enforcement", "action"),
    [("DryRun", "Rollback"), ("Enforce", "Rollback"), ("Enforce", "Recalibrate")],
)
def test_a_gap_oscillating_around_the_threshold_acts_at_most_once_per_cooldown(
    enforcement: str, action: str
) -> None:
    body = manifest(enforcement, action)
    model = read_model(body)
    spec = parse_model(body)
    # Two older revisions qualified: an enforced rollback always has somewhere to go.
    prior = PriorStatus(
        serving=V3,
        revisions=(revision(V1, 2), revision(V2, 1), revision(V3, None)),
    )
    verdicts: set[str] = set()
    actions: dict[str, datetime] = {}  # decision record name -> when it was first decided
    jobs: set[str] = set()
    now = START
    while now < START + SIMULATED:
        minute = int((now - START) / STEP)
        plan = plan_serving(model, prior, "", IMAGES)
        serving = plan.revision.bento
        states = {s.name: s.state for s in prior.slos if s.revision == serving and s.state}
        # The same statistics for every span read (the SLO window and its epochs).
        observed = statistics(body, gap_at(minute))
        read = dict.fromkeys(spans(spec, now.timestamp()), observed)
        found = slo_results(spec, read, states, now.timestamp(), 1)
        verdicts |= {result.verdict for result in found}
        decision = decide(
            Observation(
                model=model,
                prior=prior,
                plan=plan,
                deployment_ready=True,
                deployment_message="",
                pods=1,
                results=found,
                existing_jobs=frozenset(jobs),
                now=now,
            )
        )
        for record in decision.records:
            if record.decision in ("Rollback", "Recalibrate"):
                actions.setdefault(f"{record.decision}:{record.identity}", now)
        jobs |= set(decision.jobs)
        prior = PriorStatus.read(decision.status)
        now += STEP
    assert verdicts == {"Met", "Violated", "Inconclusive"}, "the gap did not oscillate"
    # When the operator acted: a recalibration that falls back first logs its
    # rollback and its recalibration in the same evaluation, as one response.
    logged = sorted({entry.time for entry in prior.actions})
    assert logged, "a gap that kept breaching never acted"
    assert len(logged) <= MAX_PER_DAY
    assert all(later - earlier >= COOLDOWN for earlier, later in itertools.pairwise(logged))
    # Every record of an action was decided once, in the evaluation that logged it.
    assert sorted(set(actions.values())) == logged
