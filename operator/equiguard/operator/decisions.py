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

from equiguard.contracts import names, records
from equiguard.contracts.records import Evidence, StoredDecision
from equiguard.contracts.status import write_number
from equiguard.operator.tables import age, format_table

API_VERSION = "equiguard.io/v1alpha1"
EXIT_OK, EXIT_FAILED = 0, 1


def of_model(stored: Sequence[StoredDecision], model: str) -> list[StoredDecision]:
    """The records about `model`, newest first; within one evaluation the action comes
    first, above the change of verdict that led to it."""
    mine = [record for record in stored if record.model == model]
    return sorted(
        mine,
        key=lambda r: (r.time, r.decision != "VerdictChanged", r.name),
        reverse=True,
    )


def evidence_summary(evidence: Evidence | None) -> str:
    """The compared quantity and its interval, as in the record (already suppressed)."""
    if evidence is None or evidence.estimate is None:
        return "-"
    figure = f"{evidence.metric} {write_number(evidence.estimate)}"
    if evidence.lower is not None and evidence.upper is not None:
        figure += f" ({write_number(evidence.lower)} to {write_number(evidence.upper)})"
    if evidence.worst_group:
        figure += f" {evidence.worst_group}"
    return figure


def render_table(stored: Sequence[StoredDecision], now: datetime) -> str:
    if not stored:
        return "No decision records."
    rows = []
    for record in stored:
        decision = record.decision + (" (dry run)" if record.dry_run else "")
        revision = record.revision or "-"
        if record.target_revision:
            revision += f" -> {record.target_revision}"
        verdict = record.verdict or "-"
        if record.previous_verdict:
            verdict = f"{record.previous_verdict} -> {verdict}"
        rows.append(
            [
                age(record.time, now),
                decision,
                record.slo or "-",
                verdict,
                revision,
                evidence_summary(record.evidence),
                record.message,
            ]
        )
    return format_table(
        ["AGE", "DECISION", "SLO", "VERDICT", "REVISION", "EVIDENCE", "MESSAGE"], rows
    )


def render_json(bodies: Sequence[Mapping[str, Any]]) -> str:
    items = [{"name": body["metadata"]["name"], **body["spec"]} for body in bodies]
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
    stored = of_model([records.read(body) for body in bodies], args.model)
    if args.limit > 0:
        stored = stored[: args.limit]
    if args.output == "json":
        by_name = {body["metadata"]["name"]: body for body in bodies}
        sys.stdout.write(render_json([by_name[record.name] for record in stored]))
    else:
        print(render_table(stored, datetime.now(UTC)))
    return EXIT_OK
