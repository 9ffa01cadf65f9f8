"""`equiguard status`: the ClinicalModels, their SLOs, verdicts, worst groups and revisions.

One line per SLO, the model's own columns on its first line, read from the
ClinicalModel status the operator writes (nothing is evaluated here). An SLO
the operator has not judged yet shows `-`, never a pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from equiguard.contracts.status import PriorStatus, format_time, parse_time, write_number
from equiguard.operator.tables import age, format_table

API_VERSION = "equiguard.io/v1alpha1"
EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True)
class SloLine:
    name: str
    verdict: str  # Met | Violated | Inconclusive | "" (not evaluated yet)
    estimate: str
    lower: str
    upper: str
    worst_group: str
    since: str
    held_back: str


@dataclass(frozen=True)
class WarningLine:
    """The model's early warning, from status.earlyWarning."""

    state: str  # Warning | Clear | Unavailable
    firing: str  # the signal kinds firing, comma-separated
    precision: str  # "borne out of decided", or "" before any was decided
    since: str
    holding: bool


@dataclass(frozen=True)
class ModelLine:
    namespace: str
    name: str
    ready: str
    serving: str
    desired: str
    last_good: str
    slo_summary: str
    last_action: str
    last_evaluation: str
    slos: tuple[SloLine, ...]
    early_warning: WarningLine | None = None


def _warning_line(raw: Mapping[str, Any] | None) -> WarningLine | None:
    if not raw or not raw.get("state"):
        return None
    tally = raw.get("warnings") or {}
    decided = int(tally.get("decided", 0))
    return WarningLine(
        state=str(raw["state"]),
        firing=", ".join(str(kind) for kind in raw.get("firing") or ()),
        precision=f"{int(tally.get('borneOut', 0))} of {decided} borne out" if decided else "",
        since=str(raw.get("since", "")),
        holding=bool(raw.get("holdingRollout", False)),
    )


def read_line(body: Mapping[str, Any]) -> ModelLine:
    """A ClinicalModel as one entry of the status table."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status") or {}
    prior = PriorStatus.read(status)
    ready = prior.condition("Ready")
    judged = {slo.name: slo for slo in prior.slos}
    slos = []
    for declared in spec.get("slos", []):
        current = judged.get(declared["name"])
        slos.append(
            SloLine(
                name=declared["name"],
                verdict=str(current.verdict) if current else "",
                estimate=write_number(current.estimate) if current else "",
                lower=write_number(current.lower) if current else "",
                upper=write_number(current.upper) if current else "",
                worst_group=current.worst_group if current else "",
                since=format_time(current.since) if current else "",
                held_back=current.held_back if current else "",
            )
        )
    return ModelLine(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        ready=ready.status if ready else "Unknown",
        serving=prior.serving,
        desired=str(status.get("desiredRevision") or spec.get("model", {}).get("bento", "")),
        last_good=str(status.get("lastGoodRevision", "")),
        slo_summary=str(status.get("sloSummary", "")),
        last_action=prior.last_action,
        last_evaluation=str(status.get("lastEvaluationTime", "")),
        slos=tuple(slos),
        early_warning=_warning_line(status.get("earlyWarning")),
    )


def _figure(slo: SloLine) -> str:
    if not slo.estimate:
        return "-"
    if slo.lower and slo.upper:
        return f"{slo.estimate} ({slo.lower} to {slo.upper})"
    return slo.estimate


def _revision(line: ModelLine) -> str:
    if line.serving and line.desired and line.serving != line.desired:
        return f"{line.serving} (spec {line.desired})"
    return line.serving or "-"


def render_table(lines: Sequence[ModelLine], now: datetime, all_namespaces: bool) -> str:
    """The table people read; the model's columns are written once, on its first SLO."""
    headings = [
        "MODEL",
        "READY",
        "REVISION",
        "LAST GOOD",
        "SLOS",
        "SLO",
        "VERDICT",
        "ESTIMATE (INTERVAL)",
        "WORST GROUP",
        "SINCE",
        "LAST ACTION",
    ]
    if all_namespaces:
        headings.insert(0, "NAMESPACE")
    rows = []
    for line in sorted(lines, key=lambda m: (m.namespace, m.name)):
        first = [
            line.name,
            line.ready,
            _revision(line),
            line.last_good or "-",
            line.slo_summary or "-",
        ]
        if all_namespaces:
            first.insert(0, line.namespace)
        blank = [""] * len(first)
        for index, slo in enumerate(line.slos or (SloLine("-", "", "", "", "", "", "", ""),)):
            verdict = slo.verdict or "-"
            if slo.held_back:
                verdict += f" ({slo.held_back})"
            since = age(parse_time(slo.since), now) if slo.since else "-"
            rows.append(
                [
                    *(first if index == 0 else blank),
                    slo.name,
                    verdict,
                    _figure(slo),
                    slo.worst_group or "-",
                    since,
                    (line.last_action or "-") if index == 0 else "",
                ]
            )
        if line.early_warning is not None:
            rows.append(_warning_row(line.early_warning, len(first), now))
    if not rows:
        return "No ClinicalModels found."
    return format_table(headings, rows)


def _warning_row(warning: WarningLine, blank: int, now: datetime) -> list[str]:
    """The early warning as one more row under the model's SLOs."""
    state = warning.state + (" (holding rollout)" if warning.holding else "")
    since = age(parse_time(warning.since), now) if warning.since else "-"
    return [
        *([""] * blank),
        "early warning",
        state,
        warning.precision or "-",
        warning.firing or "-",
        since,
        "",
    ]


def render_json(lines: Sequence[ModelLine]) -> str:
    return json.dumps({"models": [asdict(line) for line in lines]}, indent=2) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="equiguard status",
        description="Show ClinicalModels with their SLO verdicts, worst groups, revisions and "
        "last actions, as the operator last evaluated them.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default="default", help="the namespace to show")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    # Imported here: the Kubernetes client is slow to import and not needed for --help.
    from equiguard.kube import Kube, Rejected, Transient, config

    try:
        kube = Kube.from_environment()
        bodies = kube.list(
            API_VERSION, "ClinicalModel", "" if args.all_namespaces else args.namespace, {}
        )
    except config.ConfigException as error:
        print(f"equiguard status: no cluster to talk to: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (Rejected, Transient) as error:
        print(f"equiguard status: the API server could not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    lines = [read_line(body) for body in bodies]
    if args.output == "json":
        sys.stdout.write(render_json(lines))
    else:
        print(render_table(lines, datetime.now(UTC), args.all_namespaces))
    return EXIT_OK
