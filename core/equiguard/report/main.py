"""`equiguard report MODEL`: write a model's equity report as HTML and JSON."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from equiguard.engine.scored_records import RecordError
from equiguard.engine.spec import SpecError
from equiguard.kube import Kube, Rejected, Transient, context_namespace
from equiguard.report import attribute_sets
from equiguard.report.gather import GatherError, gather
from equiguard.report.render import render_report

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiguard report",
        description="Write a ClinicalModel's equity report for its owners and review panel: "
        "a self-contained HTML page and the same content as JSON.",
    )
    parser.add_argument("model", help="the ClinicalModel's name")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    parser.add_argument("-o", "--output-dir", default=".", help="where to write (default: .)")
    parser.add_argument(
        "--source-attributes",
        metavar="FILE",
        help="YAML with the developer's fairness source attributes (see docs/report.md)",
    )
    parser.add_argument(
        "--attributes",
        choices=sorted(attribute_sets.SETS),
        default=attribute_sets.DEFAULT,
        help=f"the attribute set to fill (default: {attribute_sets.DEFAULT})",
    )
    parser.add_argument(
        "--development-records",
        metavar="FILE",
        help="held-out scored records of the model's development (as `equiguard audit` reads)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    for path in (args.source_attributes, args.development_records):
        if path and not Path(path).is_file():
            print(f"equiguard report: no such file: {path}", file=sys.stderr)
            return EXIT_USAGE
    namespace = args.namespace or context_namespace()
    try:
        kube = Kube.from_environment()
        report = gather(
            kube,
            namespace,
            args.model,
            datetime.now(UTC),
            args.source_attributes,
            args.development_records,
            args.attributes,
        )
    except (GatherError, RecordError, SpecError) as error:
        print(f"equiguard report: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (Transient, Rejected) as error:
        print(f"equiguard report: the API server could not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    rendered = render_report(report)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / f"{args.model}-equity-report.html"
    json_path = out / f"{args.model}-equity-report.json"
    html_path.write_text(rendered.html, encoding="utf-8")
    json_path.write_text(rendered.json, encoding="utf-8")
    print(html_path)
    print(json_path)
    return 0
