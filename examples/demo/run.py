"""`make demo`: equiguard keeps a readmission model fair, on a local cluster.

The story: the readmission model's revision v1 is deployed and meets its
equity SLOs; v2 is rolled out and misses Black patients who will be
readmitted; the operator confirms the violation, rolls back to v1 and starts a
recalibration of v2 within the declared change-control envelope; the Job's
impact assessment is shown, an equity reviewer approves, and the recalibrated
revision serves. The demo waits for the recalibrated revision's SLOs to be
demonstrated Met; if its outcomes do not suffice within the wait, it says so
plainly, with the outcomes each group still needs, rather than claim Met. The
demo exits 0 only if the story happened (a Violated SLO on the recalibrated
revision is no such story), and ends with a summary and the path of the
equity report.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from stage import MODEL, NAMESPACE, prepared
from traffic import Traffic
from view import Observation, render

from cluster import REPO, Cluster, CommandFailed

V1, V2 = "readmission:v1", "readmission:v2"
REVIEWER = "Equity Review Panel"


@dataclass(frozen=True)
class Pace:
    evaluation_interval: str
    qualification_period: str
    pause: float  # seconds the view lingers after each step, for the audience
    round_size: int


# Rounds are large: Met must be demonstrated (every interval within the
# threshold, at the monitoring level), which takes a few hundred positives in
# each race group, and the recalibration Job must demonstrate it again on the
# held-out half of the outcomes v2 gathered before its rollback (one round):
# a round of 20,000 left its best candidate a few positives short.
PACES = {
    "fast": Pace("5s", "20s", 0.0, 25000),
    "normal": Pace("15s", "1m", 4.0, 25000),
}


def demo_manifest(pace: Pace) -> dict[str, Any]:
    """The example ClinicalModel, paced for a demo and sharing a PostgreSQL store."""
    example = yaml.safe_load((REPO / "examples/readmission/clinicalmodel.yaml").read_text())
    manifest = copy.deepcopy(example)
    spec = manifest["spec"]
    spec["slos"] = [
        {
            "name": "tpr-gap-race", "metric": "tpr", "attribute": "race",
            "comparison": "maxGap", "threshold": "0.20", "window": "7d",
            "minSamples": 50, "confidence": "0.95", "consecutiveBreaches": 3,
            "action": "Recalibrate",
        },
        {
            "name": "selection-rate-sex", "metric": "selectionRate", "attribute": "sex",
            "comparison": "gapToReference", "reference": "overall", "threshold": "0.10",
            "window": "7d", "minSamples": 50, "confidence": "0.95",
            "consecutiveBreaches": 2, "action": "Alert",
        },
    ]  # fmt: skip
    spec["evaluation"] = {
        "interval": pace.evaluation_interval,
        "qualificationPeriod": pace.qualification_period,
        "cooldown": "10s",
        "maxActionsPerDay": 5,
    }
    spec["outcomes"]["store"] = {"type": "postgresql", "dsnSecret": {"name": "readmission-store"}}
    spec["changeControl"] = {
        "methods": ["platt", "isotonic", "groupThreshold"],
        "holdoutFraction": "0.50",
        "minOutcomesPerGroup": 100,
        "approvalRequired": True,
    }
    return manifest


class StoryError(RuntimeError):
    pass


@dataclass
class Story:
    """The steps that happened, with how long each took."""

    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[str, float]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    last: float = field(default_factory=time.monotonic)

    def happened(self, what: str) -> None:
        now = time.monotonic()
        self.steps.append((what, now - self.last))
        self.lines.append(f"{now - self.started:6.0f}s  {what}")
        self.last = now


class Demo:
    def __init__(self, cluster: Cluster, pace: Pace, token: str) -> None:
        self.cluster = cluster
        self.pace = pace
        self.traffic = Traffic(token=token, round_size=pace.round_size)
        self.story = Story()
        self.predictions = 0
        self.outcomes = 0
        self.ansi = sys.stdout.isatty()
        self.current_step = "starting"

    # --- observing -----------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self.cluster.model(MODEL).get("status") or {})

    def race_metrics(self, ips: list[str]) -> tuple[dict[str, Any], str]:
        if not ips:
            return {}, ""
        try:
            with urllib.request.urlopen(
                f"http://{ips[0]}:8080/v1/metrics?window=7d", timeout=10
            ) as r:
                answer = json.load(r)
        except OSError:
            return {}, ""
        return dict(answer.get("metrics", {}).get("race", {})), str(answer.get("revision", ""))

    def show(self, status: dict[str, Any], ips: list[str]) -> None:
        metrics, revision = self.race_metrics(ips)
        observation = Observation(
            elapsed=time.monotonic() - self.story.started, step=self.current_step,
            status=status, race_metrics=metrics, metrics_revision=revision,
            predictions=self.predictions, outcomes=self.outcomes, story=self.story.lines,
        )  # fmt: skip
        if self.ansi:
            print("\033[2J\033[H" + render(observation, ansi=True), flush=True)
        else:
            slos = ", ".join(
                f"{s.get('name')}={s.get('verdict')}" for s in status.get("slos") or []
            )
            print(
                f"[{observation.elapsed:5.0f}s] serving={status.get('servingRevision')} "
                f"predictions={self.predictions} outcomes={self.outcomes} {slos}", flush=True,
            )  # fmt: skip

    # --- waiting while patients keep coming ------------------------------------

    def until(
        self,
        what: str,
        done: Callable[[dict[str, Any]], object],
        *,
        seconds: float,
        traffic: bool = True,
    ) -> Any:
        """Sends rounds of traffic and refreshes the view until `done(status)` is truthy."""
        self.current_step = what
        deadline = time.monotonic() + seconds
        while True:
            status = self.status()
            found = done(status)
            ips = self.cluster.ready_pod_ips(MODEL)
            self.show(status, ips)
            if found:
                self.story.happened(what)
                if not self.ansi:
                    print(f"==> {self.story.lines[-1].strip()}", flush=True)
                if self.pace.pause:
                    time.sleep(self.pace.pause)
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {seconds:.0f} s: {what}")
            if traffic and ips:
                result = asyncio.run(self.traffic.round(ips))
                self.predictions += result.predictions
                self.outcomes += result.outcomes_accepted
            else:
                time.sleep(2)


def slo(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in status.get("slos") or [] if s.get("name") == name), {})


def all_met(status: dict[str, Any]) -> bool:
    slos = status.get("slos") or []
    return bool(slos) and all(s.get("verdict") == "Met" for s in slos)


def decided(cluster: Cluster, decision: str, revision: str | None = None) -> bool:
    """Whether the operator recorded `decision` (on `revision`): records outlive status."""
    items = cluster.get("equitydecisions", "-n", NAMESPACE, "-l", f"equiguard.io/model={MODEL}")
    return any(
        item["spec"].get("decision") == decision
        and (revision is None or item["spec"].get("revision") == revision)
        for item in items["items"]
    )


def served(status: dict[str, Any], revision: str) -> bool:
    return any(r.get("revision") == revision for r in status.get("revisions") or [])


def awaiting_approval(cluster: Cluster, status: dict[str, Any]) -> bool:
    if decided(cluster, "RecalibrationRefused") or decided(cluster, "RecalibrationFailed"):
        message = condition(status, "Recalibrated").get("message", "")
        raise StoryError(f"the recalibration was not published: {message}")
    return condition(status, "AwaitingApproval").get("status") == "True"


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def recalibration_job(cluster: Cluster) -> str | None:
    selector = f"equiguard.io/model={MODEL},app.kubernetes.io/component=recalibration"
    jobs = cluster.get("jobs", "-n", NAMESPACE, "-l", selector)["items"]
    return str(jobs[0]["metadata"]["name"]) if jobs else None


def tell(demo: Demo) -> None:
    cluster, pace = demo.cluster, demo.pace
    cluster.apply(demo_manifest(pace))
    demo.until(
        "v1 deployed: a real BentoML server behind the equiguard sidecar",
        lambda s: (
            s.get("servingRevision") == "readmission:v1" and demo.cluster.ready_pod_ips(MODEL)
        ),
        seconds=240,
        traffic=False,
    )
    demo.until("SLOs are Inconclusive until enough outcomes arrive",
               lambda s: any(x.get("verdict") == "Inconclusive" for x in s.get("slos") or []),
               seconds=120)  # fmt: skip
    # Steps are checked on what lasts (records, revision history), not on a
    # status that the next evaluation may already have moved on from.
    demo.until(
        "v1 meets every equity SLO",
        lambda s: all_met(s) or s.get("lastGoodRevision") == V1,
        seconds=600,
    )
    demo.until("v1 qualified as the last good revision",
               lambda s: s.get("lastGoodRevision") == V1, seconds=300)  # fmt: skip

    cluster.kubectl("patch", "clinicalmodel", MODEL, "-n", NAMESPACE, "--type=merge",
                    "-p", json.dumps({"spec": {"model": {"bento": V2}}}))  # fmt: skip
    demo.until("v2 rolled out", lambda s: served(s, V2), seconds=240)
    demo.until(
        "v2 misses readmissions of Black patients: tpr-gap-race Violated",
        lambda s: (
            slo(s, "tpr-gap-race").get("verdict") == "Violated" or decided(cluster, "Rollback", V2)
        ),
        seconds=600,
    )
    demo.until(
        "rolled back to v1, the last good revision; v2 quarantined",
        lambda s: decided(cluster, "Rollback", V2) and s.get("servingRevision") == V1,
        seconds=120,
    )
    job = demo.until(
        "recalibration Job started for v2 within the envelope",
        lambda s: recalibration_job(cluster),
        seconds=120,
    )
    demo.until(
        "the Job fitted a recalibration that meets every acceptance criterion",
        lambda s: awaiting_approval(cluster, s),
        seconds=600,
    )
    result = cluster.get("configmap", f"{job}-result", "-n", NAMESPACE)["data"]
    print("\nImpact assessment (from the Job's result):\n" + result["summary.md"], flush=True)
    candidate = result["candidateRevision"]
    subprocess.run(
        [str(Path(sys.executable).with_name("equiguard")), "approve", MODEL, candidate,
         "-n", NAMESPACE, "--by", REVIEWER,
         "--reason", "Impact assessment reviewed: every subgroup within the acceptance criteria."],
        check=True, env=os.environ | {"KUBECONFIG": cluster.kubeconfig},
    )  # fmt: skip
    demo.story.happened(f"approved by the {REVIEWER}")
    demo.until(f"recalibrated revision {candidate} serving",
               lambda s: s.get("servingRevision") == candidate and cluster.ready_pod_ips(MODEL),
               seconds=240)  # fmt: skip
    try:
        demo.until(
            "the recalibrated revision meets every equity SLO",
            lambda s: all_met(s) and s.get("servingRevision") == candidate,
            seconds=900,
        )
    except TimeoutError:
        status = demo.status()
        if status.get("servingRevision") != candidate:
            raise StoryError(f"{candidate} no longer serves") from None
        violated = [s["name"] for s in status.get("slos") or [] if s.get("verdict") == "Violated"]
        if violated:
            raise StoryError(f"{candidate} violates {', '.join(violated)}") from None
        what = f"{candidate} serves; its SLOs are not yet demonstrated Met: " + undecided(status)
        demo.story.happened(what)
        print(f"\n==> {what}", flush=True)


def undecided(status: dict[str, Any]) -> str:
    """The SLOs not Met, with their verdicts and the outcomes per group still needed."""
    parts = []
    for s in status.get("slos") or []:
        if s.get("verdict") == "Met":
            continue
        needed = s.get("outcomesNeeded")
        more = f", about {int(needed):,} more outcomes per group needed" if needed else ""
        parts.append(f"{s.get('name')} {s.get('verdict')}{more}")
    return "; ".join(parts) or "no verdicts yet"


def write_report(cluster: Cluster) -> list[str]:
    """Writes the equity report; returns the paths `equiguard report` printed (HTML, JSON)."""
    out = REPO / "out" / "demo-report"
    attributes = REPO / "examples/readmission/source-attributes.yaml"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("equiguard")), "report", MODEL, "-n", NAMESPACE,
         "-o", str(out), "--source-attributes", str(attributes)],
        check=True, env=os.environ | {"KUBECONFIG": cluster.kubeconfig},
        capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="no pauses, short intervals (~5 min)")
    args = parser.parse_args(argv)
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        print(
            "KUBECONFIG is not set: run `make demo` (it starts the local cluster)", file=sys.stderr
        )
        return 2
    pace = PACES["fast" if args.fast else "normal"]
    cluster = Cluster(kubeconfig, NAMESPACE)
    try:
        with prepared(cluster) as token:
            demo = Demo(cluster, pace, token)
            try:
                tell(demo)
            finally:
                print("\nWhat happened, and how long each step took:")
                for what, seconds in demo.story.steps:
                    print(f"  {seconds:6.1f} s  {what}")
            print("\nThe equity report: " + " and ".join(write_report(cluster)))
    except (TimeoutError, StoryError, CommandFailed, subprocess.CalledProcessError) as error:
        print(f"\nThe story did not happen as told: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
