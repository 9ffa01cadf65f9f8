"""`equiguard operator`: run the ClinicalModel operator."""

from __future__ import annotations

import argparse
import logging

import kopf
from equiguard.kube import Kube
from equiguard.operator import alerts, handlers
from equiguard.operator.manifests import Images
from equiguard.operator.metrics import OperatorMetrics
from equiguard.operator.reconcile import Settings
from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

DEFAULT_IMAGE = "ghcr.io/equiguard/sidecar:0.1.0"
DEFAULT_MODEL_IMAGE = "ghcr.io/equiguard/model-runtime:0.1.0"
# Seconds between retries of a failed API call (kopf's own calls).
API_RETRY_BACKOFFS = (1, 2, 5, 10, 20) + (30,) * 10


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="equiguard operator",
        description="Deploy ClinicalModels, evaluate their equity SLOs continuously, roll back "
        "or recalibrate within their envelope, and record every decision.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--peering",
        default="equiguard",
        help="the ClusterKopfPeering that keeps a single instance active",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="run without peering (for development only)"
    )
    parser.add_argument(
        "--priority", type=int, default=0, help="peering priority; a higher one pauses the others"
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=60,
        help="seconds after which a silent peer counts as gone",
    )
    parser.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="URL of the liveness endpoint to serve",
    )
    parser.add_argument(
        "--metrics-address", default="0.0.0.0", help="address of the Prometheus /metrics endpoint"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        help="port of the Prometheus /metrics endpoint (0 disables it)",
    )
    parser.add_argument(
        "--sidecar-image",
        default=DEFAULT_IMAGE,
        help="image of the sidecar (and its config init container)",
    )
    parser.add_argument(
        "--job-image",
        default=DEFAULT_MODEL_IMAGE,
        help="image of recalibration Jobs: one holding the bentos they calibrate",
    )
    parser.add_argument(
        "--model-image",
        default=DEFAULT_MODEL_IMAGE,
        help="BentoML runtime image of models whose spec names no spec.model.image",
    )
    parser.add_argument(
        "--job-service-account",
        default="equiguard-recalibration",
        help="ServiceAccount of recalibration Jobs (they write their result ConfigMap)",
    )
    parser.add_argument(
        "--model-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every model container (repeatable)",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=alerts.DEFAULT_RUNBOOK_BASE,
        help="where alerts' runbook_url points",
    )
    parser.add_argument(
        "--tick",
        type=float,
        default=5.0,
        help="seconds between checks whether a model's evaluation is due",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=16,
        help="threads for API calls (evaluations of different models run in parallel)",
    )
    parser.add_argument(
        "--stats-timeout", type=float, default=10.0, help="seconds to wait for one pod's statistics"
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "plain"],
        default="json",
        help="structured JSON lines (default) or plain text",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"equiguard operator: --model-env wants NAME=VALUE, not {text!r}")
    return name, value


# What makes a --namespace a pattern in kopf's syntax: globs, negations, lists
# (kopf's own test for it is not part of its public API).
NAMESPACE_PATTERN_SIGNS = set("*?!,")


def operator_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    """kopf's settings: our own API group for its bookkeeping, peering, Events' reporter."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = "equiguard.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="equiguard.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="equiguard.io", key="last-handled-configuration"
    )
    settings.peering.name = args.peering
    settings.peering.priority = args.priority
    settings.peering.lifetime = args.peering_lifetime
    settings.peering.stealth = True
    settings.posting.reporting_component = "equiguard-operator"
    settings.posting.level = logging.WARNING  # kopf's own Events: only problems
    settings.watching.server_timeout = 300
    # A watch that goes silent (a proxy or load balancer holding it open) ends
    # from our side too, and is opened again; meanwhile evaluations read afresh.
    settings.watching.client_timeout = 360
    # Children are watched for drift; only ours, filtered by the API server.
    for plural in ("deployments", "services", "configmaps"):
        settings.watching.label_selectors[plural] = "app.kubernetes.io/managed-by=equiguard"
    # An API server away for minutes (an upgrade, a failover) is waited for: past
    # its retries kopf stops the operator, and its process then hangs instead of
    # exiting. So it retries for sum(API_RETRY_BACKOFFS), 338 s.
    settings.networking.error_backoffs = API_RETRY_BACKOFFS
    # Serving named namespaces (a Role in each, nothing cluster-wide), there is
    # nothing to discover: kopf's scan of namespaces and CRDs would be refused,
    # retried through every backoff above and only then given up, and
    # the operator would sit paused all that time after each start.
    settings.scanning.disabled = bool(args.namespace) and not any(
        set(namespace) & NAMESPACE_PATTERN_SIGNS for namespace in args.namespace
    )
    return settings


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        # kopf logs every timer run at INFO; the operator logs its own decisions.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kube = Kube.from_environment(connections=args.workers)
    metrics = OperatorMetrics(api_requests=kube.requests_made)
    if args.metrics_port:
        exposition = CollectorRegistry()
        exposition.register(metrics)
        start_http_server(args.metrics_port, addr=args.metrics_address, registry=exposition)
    runtime = handlers.Runtime(
        kube=kube,
        settings=Settings(
            images=Images(
                sidecar=args.sidecar_image,
                job=args.job_image,
                model=args.model_image,
                model_env=tuple(_pair(item) for item in args.model_env),
            ),
            runbook_base=args.runbook_base_url,
            job_service_account=args.job_service_account,
            stats_timeout=args.stats_timeout,
        ),
        metrics=metrics,
        tick=args.tick,
        workers=args.workers,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry, runtime)
    kopf.run(
        registry=registry,
        settings=operator_settings(args),
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone,
        priority=args.priority,
        # A named peering is mandatory: without its object a second replica would act twice.
        peering_name=None if args.standalone else args.peering,
        liveness_endpoint=args.liveness,
    )
    return 0
