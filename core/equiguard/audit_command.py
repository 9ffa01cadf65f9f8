"""`equiguard audit`: the command around `engine.audit`, reading its files and options.

A command, above the contracts: the manifest's `spec.earlyWarning` (its
false-alarm budget and the reference outcomes a group needs) is read by its
one reader, `contracts.early_warning`. Input that cannot be used (records,
reference or manifest) exits 2 with the reason: the run assessed nothing. 1
stays free for a crash (Python's own exit code).
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml
from equiguard.contracts import early_warning
from equiguard.engine.audit import build_report, read_manifest, render_table
from equiguard.engine.score_audit import DEFAULT_FALSE_ALARM_RATE, DEFAULT_MIN_OUTCOMES
from equiguard.engine.scored_records import RecordError, Records, read_records
from equiguard.engine.spec import SpecError, parse_model

EXIT_BAD_INPUT = 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="equiguard audit",
        description="Per-group metrics with intervals and SLO verdicts for scored records; "
        "for records without outcomes, selection rates, label-free estimates and shifts.",
    )
    parser.add_argument(
        "records",
        help="CSV with a header, or JSON lines (.jsonl/.ndjson, - for stdin); "
        "a record without a label has no outcome yet",
    )
    parser.add_argument("--model", required=True, help="the ClinicalModel manifest (YAML)")
    parser.add_argument(
        "--reference",
        help="records with outcomes to estimate against (such as the last good revision's)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="level of the metrics' intervals (default 0.95)",
    )
    parser.add_argument(
        "--show-small-cells",
        action="store_true",
        help="do not hide counts from 1 to 10 (for use inside the data boundary only)",
    )
    args = parser.parse_args(argv)
    try:
        manifest = read_manifest(args.model)
        model = parse_model(manifest)
        warning = early_warning.read(manifest.get("spec") or {})
    except (OSError, yaml.YAMLError, SpecError) as error:
        print(f"equiguard audit: {args.model}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except UnicodeDecodeError as error:
        print(
            f"equiguard audit: {args.model}: not UTF-8 text (byte {error.start})", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    if not 0.0 < args.confidence < 1.0:
        print("equiguard audit: --confidence must lie in (0, 1)", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        records = read_records(args.records, model, outcomes_may_be_missing=True)
    except (OSError, RecordError) as error:
        print(f"equiguard audit: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    reference: Records | None = None
    try:
        if args.reference is not None:
            # Every reference record needs its outcome: it is what the estimates rest on.
            reference = read_records(args.reference, model)
    except (OSError, RecordError) as error:
        print(f"equiguard audit: --reference: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = build_report(
        model,
        records,
        args.confidence,
        suppress=not args.show_small_cells,
        reference=reference,
        false_alarm_rate=DEFAULT_FALSE_ALARM_RATE if warning is None else warning.false_alarm_rate,
        min_outcomes=DEFAULT_MIN_OUTCOMES if warning is None else warning.min_outcomes,
    )
    if args.format == "json":
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(report))
    return 0
