"""`equiguard decisions MODEL`: a model's decision records, newest first.

The EquityDecision records are the audit trail: what was decided, when, on
which revision, about which SLO, and on what evidence. The table shows each
record's summary; `-o json` gives the records' specs as stored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from equiguard.contracts import names
from equiguard.contracts.status import parse_time
from equiguard.operator.tables import age, format_table

API_VERSION = "equiguard.io/v1alpha1"
EXIT_OK, EXIT_FAILED = 0, 1


def of_model(bodies: Sequence[Mapping[str, Any]], model: str) -> list[Mapping[str, Any]]:
    """The records about `model`, newest first; within one evaluation the action comes
    first, above the change of verdict that led to it."""
    mine = [body for body in bodies if body.get("spec", {}).get("model") == model]
    return sorted(
        mine,
        key=lambda b: (
            parse_time(b["spec"]["time"]),
            b["spec"]["decision"] != "VerdictChanged",
            b["metadata"]["name"],
        ),
        reverse=True,
    )


def evidence_summary(spec: Mapping[str, Any]) -> str:
    """The compared quantity and its interval, as in the record (already suppressed)."""
    evidence = spec.get("evidence") or {}
    estimate = evidence.get("estimate")
    if not estimate:
        return "-"
    figure = f"{evidence.get('metric', '')} {estimate}"
    if evidence.get("lower") and evidence.get("upper"):
        figure += f" ({evidence['lower']} to {evidence['upper']})"
    if evidence.get("worstGroup"):
        figure += f" {evidence['worstGroup']}"
    return figure


def render_table(records: Sequence[Mapping[str, Any]], now: datetime) -> str:
    if not records:
        return "No decision records."
    rows = []
    for body in records:
        spec = body["spec"]
        decision = spec["decision"] + (" (dry run)" if spec.get("dryRun") else "")
        revision = spec.get("revision", "-")
        if spec.get("targetRevision"):
            revision += f" -> {spec['targetRevision']}"
        verdict = spec.get("verdict", "-")
        if spec.get("previousVerdict"):
            verdict = f"{spec['previousVerdict']} -> {verdict}"
        rows.append(
            [
                age(parse_time(spec["time"]), now),
                decision,
                spec.get("slo") or "-",
                verdict,
                revision,
                evidence_summary(spec),
                spec.get("message", ""),
            ]
        )
    return format_table(
        ["AGE", "DECISION", "SLO", "VERDICT", "REVISION", "EVIDENCE", "MESSAGE"], rows
    )


def render_json(records: Sequence[Mapping[str, Any]]) -> str:
    items = [{"name": body["metadata"]["name"], **body["spec"]} for body in records]
    return json.dumps({"decisions": items}, indent=2) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="equiguard decisions",
        description="List a ClinicalModel's decision records (the audit trail), newest first.",
    )
    parser.add_argument("model", help="the ClinicalModel's name")
    parser.add_argument("-n", "--namespace", default="default", help="the model's namespace")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--limit", type=int, default=0, help="show only the newest N records")
    args = parser.parse_args(argv)
    # Imported here: the Kubernetes client is slow to import and not needed for --help.
    from equiguard.kube import Kube, Rejected, Transient, config

    try:
        kube = Kube.from_environment()
        bodies = kube.list(
            API_VERSION, "EquityDecision", args.namespace, {names.MODEL_LABEL: args.model}
        )
    except config.ConfigException as error:
        print(f"equiguard decisions: no cluster to talk to: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (Rejected, Transient) as error:
        print(f"equiguard decisions: the API server could not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    records = of_model(bodies, args.model)
    if args.limit > 0:
        records = records[: args.limit]
    if args.output == "json":
        sys.stdout.write(render_json(records))
    else:
        print(render_table(records, datetime.now(UTC)))
    return EXIT_OK
