"""`equiguard modelcard MODEL`: write the CHAI Applied Model Card (XML) of a ClinicalModel
from its spec, its live status and, when given, its development records."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml
from equiguard.engine.audit import build_report
from equiguard.engine.scored_records import RecordError, read_records
from equiguard.engine.spec import SpecError, parse_model
from equiguard.governance.modelcard import OWNER_FIELDS, model_card
from equiguard.kube import Kube, Rejected, Transient, context_namespace

API_VERSION = "equiguard.io/v1alpha1"
EXIT_FAILED = 1
DEVELOPMENT_CONFIDENCE = 0.95


class CardError(ValueError):
    """What the card could not be made from, in a sentence for the user."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiguard modelcard",
        description="Write a ClinicalModel's CHAI Applied Model Card (schema v0.2) as XML.",
    )
    parser.add_argument("model", help="the ClinicalModel's name")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the context's)")
    parser.add_argument("-o", "--output-dir", default=".", help="where to write (default: .)")
    parser.add_argument(
        "--development-records",
        metavar="FILE",
        help="held-out scored records of the model's development (as `equiguard audit` reads)",
    )
    parser.add_argument(
        "--owner-facts",
        metavar="FILE",
        help="YAML with the card's fields only the owner knows (see docs/governance.md)",
    )
    return parser


def read_owner_facts(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, Mapping):
        raise CardError(f"{path}: the owner's facts must be a YAML mapping")
    unknown = sorted(set(map(str, data)) - set(OWNER_FIELDS))
    if unknown:
        raise CardError(
            f"{path}: unknown fields {', '.join(unknown)}; the fields are {', '.join(OWNER_FIELDS)}"
        )
    return {str(k): str(v) for k, v in data.items() if v is not None}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    namespace = args.namespace or context_namespace()
    try:
        body = Kube.from_environment().get(API_VERSION, "ClinicalModel", namespace, args.model)
        if body is None:
            raise CardError(f"no ClinicalModel {args.model!r} in namespace {namespace!r}")
        development = None
        if args.development_records:
            spec = parse_model(body)
            records = read_records(args.development_records, spec)
            development = build_report(spec, records, DEVELOPMENT_CONFIDENCE, suppress=True)
        owner = read_owner_facts(args.owner_facts) if args.owner_facts else {}
    except (CardError, RecordError, SpecError, OSError) as error:
        print(f"equiguard modelcard: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (Transient, Rejected) as error:
        print(f"equiguard modelcard: the API server could not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.model}-applied-model-card.xml"
    path.write_bytes(model_card(body, development, owner))
    print(path)
    return 0
