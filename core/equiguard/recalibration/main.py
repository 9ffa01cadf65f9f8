"""`equiguard recalibrate`: the recalibration Job's command.

    equiguard recalibrate --model MANIFEST.yaml --store DSN-OR-PATH --out DIR
        [--revision TAG] [--slo NAME | --dimension NAME] [--method M]...
        [--window 7d] [--until TIME] [--bento-home DIR] [--export]
        [--calibration-configmap [--calibration FILE]] [--store-token-env VAR]
        [--result-configmap NAME --namespace NS [--job-name N --job-uid U]]

Gather (the manifest, the window's joined outcomes), decide (fit and judge,
equiguard.recalibration.decide), act (publish the bento only when every
criterion holds, write the impact assessment, and the result ConfigMap when
asked). Exit codes: 0 a candidate was published, 3 refused (nothing was
published; the assessment says why), 2 bad usage, manifest or envelope,
1 failure (the store or the bento store could not be used; retrying may help).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from equiguard.contracts import names
from equiguard.contracts.change_control import Envelope, parse_envelope
from equiguard.contracts.recalibration_result import (
    ASSESSMENT_KEY,
    SUMMARY_KEY,
    RecalibrationResult,
    configmap,
)
from equiguard.engine.spec import ModelSpec, Slo, SpecError, parse_duration, parse_model
from equiguard.engine.subgroups import CellLayout
from equiguard.recalibration.bento import (
    PublishError,
    calibrated_base,
    calibration_text,
    candidate_calibration,
    candidate_tag,
    publish,
    read_base,
)
from equiguard.recalibration.cells import declared_dimensions
from equiguard.recalibration.decide import PUBLISH, Decision, Inputs, decide
from equiguard.recalibration.maps import Calibration
from equiguard.recalibration.outcomes import StoreError, open_source
from equiguard.recalibration.report import Context, assessment_document, summary
from equiguard.recalibration.result import (
    ResultError,
    calibration_configmap,
    publish_calibration,
    write_result,
)

EXIT_PUBLISHED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
# A ConfigMap holds at most 1 MiB, metadata included.
CONFIGMAP_BUDGET = 900_000
# The sidecar's bearer token, as the operator gives it to the sidecar and the Job.
TOKEN_ENV = "EQUIGUARD_OUTCOMES_TOKEN"


class UsageError(Exception):
    """A bad argument, manifest or envelope; the message names it."""


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        manifest, spec, envelope = _read_manifest(args.model)
        slo, dimension = _trigger(spec, args.slo, args.dimension)
        methods = _methods(envelope, args.method)
        revision = args.revision or str(manifest["spec"]["model"]["bento"])
        until = _time(args.until) if args.until else time.time()
        window = parse_duration(args.window) if args.window else envelope.window_seconds
        store = _store(args.store, args.store_env)
        token = os.environ.get(args.store_token_env, "")
        bento_home = _bento_home(args.bento_home)
    except (UsageError, SpecError, ValueError, KeyError, TypeError) as error:
        print(f"equiguard recalibrate: {error}", file=sys.stderr)
        return EXIT_USAGE
    namespace = args.namespace or str(manifest["metadata"].get("namespace", ""))
    attributes = [a.name for a in spec.subgroups.attributes]
    try:
        outcomes = open_source(store, token).joined(revision, until - window, until, attributes)
    except StoreError as error:
        print(f"equiguard recalibrate: {error}", file=sys.stderr)
        return EXIT_FAILED
    decision = decide(Inputs(spec, envelope, slo, dimension, methods, outcomes, until))
    candidate = None
    if decision.outcome == PUBLISH:
        if bento_home is None:
            print(
                "equiguard recalibrate: a candidate passed but there is no BentoML store to "
                "read its base from: give --bento-home or set BENTOML_HOME",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            if args.calibration_configmap:
                candidate = _publish_configmap(
                    decision, manifest, revision, bento_home, namespace, args.calibration
                )
            else:
                candidate = _publish(decision, manifest, revision, bento_home, args)
        except (PublishError, ResultError) as error:
            print(f"equiguard recalibrate: {error}", file=sys.stderr)
            return EXIT_FAILED
    context = Context(
        model=spec.name,
        namespace=namespace,
        serving_revision=revision,
        candidate_revision=candidate,
        slo=None if slo is None else slo.name,
        dimension=dimension,
        since=until - window,
        until=until,
        envelope=envelope,
        layout=CellLayout.from_spec(spec.subgroups),
    )
    document = assessment_document(decision, context)
    result = _result(decision, document)
    _write_files(Path(args.out), result)
    if args.result_configmap:
        try:
            model_uid = manifest["metadata"].get("uid")
            write_result(context.namespace, configmap(
                args.result_configmap, spec.name, fit_configmap(result, document),
                args.job_name, args.job_uid, str(model_uid) if model_uid else None,
            ))  # fmt: skip
        except ResultError as error:
            print(f"equiguard recalibrate: {error}", file=sys.stderr)
            return EXIT_FAILED
    verb = f"published {candidate}" if candidate else "refused, nothing published"
    print(f"{spec.name} {revision}: {verb} ({decision.reason}): {decision.message}")
    return EXIT_PUBLISHED if candidate else EXIT_REFUSED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiguard recalibrate",
        description="Fit a per-group recalibration within the model's change-control "
        "envelope and publish it as a new bento only if every acceptance criterion holds.",
    )
    parser.add_argument("--model", required=True, help="the ClinicalModel manifest (YAML)")
    store = parser.add_mutually_exclusive_group(required=True)
    store.add_argument(
        "--store", help="the sidecar's SQLite file, its URL (http://...), or a postgresql:// DSN"
    )
    store.add_argument("--store-env", help="an environment variable holding the store's DSN")
    parser.add_argument("--out", required=True, help="folder for the assessment and summary")
    parser.add_argument("--revision", help="the serving revision (default spec.model.bento)")
    parser.add_argument("--slo", help="the SLO that triggered the recalibration")
    parser.add_argument("--dimension", help="attribute or intersection, when no --slo")
    parser.add_argument("--method", action="append", help="restrict to this allowed method")
    parser.add_argument("--window", help="window of outcomes, e.g. 7d (default changeControl)")
    parser.add_argument("--until", help="end of the window: RFC 3339 or epoch seconds (now)")
    parser.add_argument("--bento-home", help="BentoML store of the bentos (default BENTOML_HOME)")
    parser.add_argument("--export", action="store_true", help="also export the bento to --out")
    parser.add_argument(
        "--calibration-configmap", action="store_true",
        help="publish the candidate as the immutable ConfigMap of its calibration in "
        "--namespace (the model runtime applies it to the base bento) instead of a bento",
    )
    parser.add_argument(
        "--calibration",
        help="the calibration document of --revision, when it is a recalibrated revision "
        "published as a ConfigMap (with --calibration-configmap)",
    )
    parser.add_argument(
        "--store-token-env", default=TOKEN_ENV,
        help=f"the variable holding the sidecar's bearer token, for a URL --store ({TOKEN_ENV})",
    )
    parser.add_argument("--result-configmap", help="write the result to this ConfigMap")
    parser.add_argument("--namespace", help="the model's namespace (default the manifest's)")
    parser.add_argument("--job-name", help="the Job that owns the result ConfigMap")
    parser.add_argument("--job-uid", help="that Job's UID")
    return parser


def _read_manifest(path: str) -> tuple[dict[str, Any], ModelSpec, Envelope]:
    try:
        with open(path, encoding="utf-8") as file:
            manifest = yaml.safe_load(file)
    except OSError as error:
        raise UsageError(f"cannot read the manifest {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"the manifest {path} is not valid YAML: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        raise UsageError(f"the manifest {path} is not a ClinicalModel")
    return manifest, parse_model(manifest), parse_envelope(manifest["spec"])


def _trigger(
    spec: ModelSpec, slo_name: str | None, dimension: str | None
) -> tuple[Slo | None, str]:
    if slo_name:
        matching = [s for s in spec.slos if s.name == slo_name]
        if not matching:
            raise UsageError(f"--slo {slo_name}: the model declares no such SLO")
        if dimension and dimension != matching[0].attribute:
            raise UsageError(
                f"--dimension {dimension}: the SLO {slo_name} is about {matching[0].attribute}"
            )
        return matching[0], matching[0].attribute
    if dimension:
        if dimension not in declared_dimensions(spec.subgroups):
            raise UsageError(f"--dimension {dimension}: not a declared attribute or intersection")
        return None, dimension
    recalibrating = [s for s in spec.slos if s.action == "Recalibrate"]
    if not recalibrating:
        raise UsageError("name the SLO (--slo) or the dimension (--dimension) to recalibrate")
    return recalibrating[0], recalibrating[0].attribute


def _methods(envelope: Envelope, requested: list[str] | None) -> tuple[str, ...]:
    if not requested:
        return envelope.methods
    outside = [m for m in requested if m not in envelope.methods]
    if outside:
        raise UsageError(
            f"--method {', '.join(outside)}: not allowed by spec.changeControl.methods "
            f"({', '.join(envelope.methods)})"
        )
    return tuple(m for m in envelope.methods if m in requested)


def _store(store: str | None, variable: str | None) -> str:
    if store:
        return store
    value = os.environ.get(variable or "", "")
    if not value:
        raise UsageError(f"--store-env {variable}: the environment variable is empty")
    return value


def _bento_home(value: str | None) -> Path | None:
    home = value or os.environ.get("BENTOML_HOME")
    return Path(home) if home else None


def _time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise UsageError(f"--until {text}: not RFC 3339 nor epoch seconds") from None


def _publish(
    decision: Decision, manifest: dict[str, Any], revision: str, bento_home: Path,
    args: argparse.Namespace,
) -> str:  # fmt: skip
    layer = decision.layer
    assert layer is not None  # a published decision always has its layer
    base = read_base(bento_home, revision)
    calibration = candidate_calibration(
        base, layer, str(manifest["spec"]["prediction"]["scorePath"]),
        manifest["spec"]["subgroups"],
    )  # fmt: skip
    tag = candidate_tag(base, calibration)
    export = Path(args.out) / f"{tag.replace(':', '-')}.bento" if args.export else None
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
    publish(base, calibration, tag, bento_home, export)
    return tag


def _publish_configmap(
    decision: Decision, manifest: dict[str, Any], revision: str, bento_home: Path,
    namespace: str, serving_calibration: str | None,
) -> str:  # fmt: skip
    """Publish the candidate as its calibration's ConfigMap; the base bento is only read."""
    layer = decision.layer
    assert layer is not None  # a published decision always has its layer
    model = str(manifest["metadata"]["name"])
    serving = names.calibration_configmap_name(model, revision)
    name, _, version = revision.partition(":")
    if serving is not None and not (bento_home / "bentos" / name / version).exists():
        # A recalibrated revision served from its ConfigMap (mounted by the operator).
        if not serving_calibration:
            raise PublishError(f"{revision} is served from {serving}: give its --calibration")
        try:
            document = Path(serving_calibration).read_text(encoding="utf-8")
            prior = Calibration.from_dict(json.loads(document))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PublishError(f"cannot read {serving_calibration}: {error}") from None
        base = calibrated_base(bento_home, revision, prior)
        if candidate_tag(base, prior) != revision:
            raise PublishError(f"the ConfigMap {serving} is not the calibration of {revision}")
    else:
        base = read_base(bento_home, revision)
    calibration = candidate_calibration(
        base, layer, str(manifest["spec"]["prediction"]["scorePath"]),
        manifest["spec"]["subgroups"],
    )  # fmt: skip
    tag = candidate_tag(base, calibration)
    configmap = names.calibration_configmap_name(model, tag)
    assert configmap is not None  # a candidate's tag always names its calibration
    uid = manifest["metadata"].get("uid")
    publish_calibration(namespace, calibration_configmap(
        configmap, model, str(uid) if uid else None, tag, calibration_text(calibration),
    ))  # fmt: skip
    return tag


def _result(decision: Decision, document: dict[str, Any]) -> RecalibrationResult:
    chosen = decision.chosen
    return RecalibrationResult(
        outcome=decision.outcome,
        reason=decision.reason,
        message=decision.message,
        serving_revision=document["servingRevision"],
        candidate_revision=document["candidateRevision"] or "",
        method="" if chosen is None else chosen.fit.method,
        dimension=document["trigger"]["dimension"],
        slo=document["trigger"]["slo"] or "",
        assessment=json.dumps(document, indent=1, sort_keys=False),
        summary=summary(document),
    )


def fit_configmap(result: RecalibrationResult, document: dict[str, Any]) -> RecalibrationResult:
    """The result as it fits a ConfigMap (1 MiB): without the metrics blocks if too large.

    The criteria, their checks and the SLO verdicts always stay; the files in
    --out keep everything.
    """
    if sum(len(value.encode()) for value in result.write().values()) <= CONFIGMAP_BUDGET:
        return result
    trimmed = copy.deepcopy(document)
    trimmed["trimmed"] = "metrics blocks left out to fit a ConfigMap; the Job's --out has them"
    for block in (trimmed["before"], *(c["after"] for c in trimmed["candidates"])):
        if block is not None:
            block.pop("metrics", None)
    return replace(result, assessment=json.dumps(trimmed, indent=1))


def _write_files(out: Path, result: RecalibrationResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "assessment.json").write_text(result.assessment + "\n", encoding="utf-8")
    (out / "summary.md").write_text(result.summary, encoding="utf-8")
    compact = {k: v for k, v in result.write().items() if k not in (ASSESSMENT_KEY, SUMMARY_KEY)}
    (out / "result.json").write_text(json.dumps(compact, indent=1) + "\n", encoding="utf-8")
