"""`equiguard pccp MODEL [--change JOB]`: write a recalibration's change record
(Markdown and JSON) from the Job's result and the model's decision records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from equiguard.contracts import names, records
from equiguard.contracts.recalibration_result import RecalibrationResult, result_name
from equiguard.governance.markdown import render_change_record
from equiguard.governance.pccp import ChangeRecordError, change_record
from equiguard.kube import Kube, Rejected, Transient, context_namespace

API_VERSION = "equiguard.io/v1alpha1"
EXIT_FAILED = 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiguard pccp",
        description="Write the change record of a model's recalibration, structured as a "
        "predetermined change control plan: Markdown for people and JSON for machines.",
    )
    parser.add_argument("model", help="the ClinicalModel's name")
    parser.add_argument(
        "--change", metavar="JOB", help="the recalibration Job (default: the latest one recorded)"
    )
    parser.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    parser.add_argument("-o", "--output-dir", default=".", help="where to write (default: .)")
    return parser


def gather(
    kube: Kube, namespace: str, model: str, change: str | None
) -> tuple[dict[str, Any], str, RecalibrationResult, list[records.StoredDecision]]:
    """The model, the chosen Job, its result and the model's decisions; ChangeRecordError
    says what is missing."""
    body = kube.get(API_VERSION, "ClinicalModel", namespace, model)
    if body is None:
        raise ChangeRecordError(f"no ClinicalModel {model!r} in namespace {namespace!r}")
    decisions = [
        records.read(item)
        for item in kube.list(API_VERSION, "EquityDecision", namespace, {names.MODEL_LABEL: model})
    ]
    jobs = [d.job for d in sorted(decisions, key=lambda d: d.time) if d.job]
    if change is None:
        if not jobs:
            raise ChangeRecordError(f"{model} has no recalibration recorded")
        change = jobs[-1]
    elif change not in jobs:
        raise ChangeRecordError(
            f"--change: {model} has no recalibration {change!r}; recorded: "
            + (", ".join(dict.fromkeys(jobs)) or "none")
        )
    configmap = kube.get("v1", "ConfigMap", namespace, result_name(change))
    if configmap is None:
        raise ChangeRecordError(
            f"{change} left no result ({result_name(change)}): it has not finished, or its "
            "result was deleted"
        )
    return body, change, RecalibrationResult.read(configmap.get("data") or {}), decisions


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    namespace = args.namespace or context_namespace()
    try:
        body, job, result, decisions = gather(
            Kube.from_environment(), namespace, args.model, args.change
        )
        record = change_record(body, job, result, decisions)
    except ChangeRecordError as error:
        print(f"equiguard pccp: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (Transient, Rejected) as error:
        print(f"equiguard pccp: the API server could not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = out / names.change_record_file(args.model, job)
    markdown, document = base.with_suffix(".md"), base.with_suffix(".json")
    markdown.write_text(render_change_record(record), encoding="utf-8")
    document.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(markdown)
    print(document)
    return 0
