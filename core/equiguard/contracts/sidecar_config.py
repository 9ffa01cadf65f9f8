"""The sidecar's configuration contract: a ClinicalModel spec plus where to listen and store.

The operator writes it (`template`, into a ConfigMap whose placeholders an
init container fills with the pod's address and revision); the sidecar reads
it (`load_config`, `parse_config`). docs/sidecar.md shows a complete file.
`spec` is the ClinicalModel's spec, read by the engine's own parser (so
subgroups, thresholds and SLOs mean the same everywhere) plus the parts only
the sidecar uses: each attribute's `source` and `prediction.scorePath`.
`model` says which model and revision this pod serves; `sidecar` holds the
things a pod needs that a spec does not say: upstream, port, token, store.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from equiguard.contracts import names
from equiguard.contracts.jsonpath import JsonPath, JsonPathError, compile_path
from equiguard.contracts.model import EVALUATION_DEFAULTS, ClinicalModel
from equiguard.engine.spec import ModelSpec, SpecError, parse_duration, parse_model

CONFIG_FILE = "sidecar.yaml"
# Filled in by the pod (its address, its revision) when the template is rendered.
POD_IP_PLACEHOLDER = "@POD_IP@"
REVISION_PLACEHOLDER = "@REVISION@"
TOKEN_ENV = "EQUIGUARD_OUTCOMES_TOKEN"
DSN_ENV = "EQUIGUARD_STORE_DSN"
# The SQLite file, relative: the sidecar runs in its data volume.
SQLITE_FILE = "predictions.db"
# The spec sections the sidecar reads; the rest would only roll pods needlessly.
SPEC_KEYS = ("prediction", "subgroups", "slos", "outcomes")
# spec.outcomes defaults and store kinds, equal to the CRD's (tests/unit/test_contracts_crd.py).
OUTCOMES_DEFAULTS: Mapping[str, str] = {"retention": "45d"}
STORE_KINDS: tuple[str, ...] = ("sqlite", "postgresql")
DEFAULT_MAX_BODY_BYTES = 1 << 20
# Connections the front opens to the model server at most; more requests at
# once wait for one (within upstreamTimeout).
DEFAULT_UPSTREAM_CONNECTIONS = 64
# The statistics cover the longest SLO window, and never less than this.
MIN_STATISTICS_SPAN = "7d"
# The prediction journal's folder name, by default beside the SQLite file.
JOURNAL_DIR = "prediction-journal"


Source = Literal["field", "header", "context"]


@dataclass(frozen=True)
class SourcedAttribute:
    """Where one declared attribute is read from in a prediction request."""

    name: str
    source: Source
    key: str


_SOURCES: dict[str, Source] = {"field": "field", "header": "header", "context": "context"}


class ConfigError(ValueError):
    """A configuration the sidecar cannot run with; the message names the field and the fix."""


@dataclass(frozen=True)
class StoreConfig:
    kind: Literal["sqlite", "postgresql"]
    path: str  # sqlite: the database file
    dsn_file: str  # postgresql: a file holding the DSN (a mounted Secret) ...
    dsn_env: str  # ... or an environment variable holding it
    lease_seconds: float  # postgresql: silence after which a replica's rows are adopted

    def dsn(self) -> str:
        if self.dsn_file:
            with open(self.dsn_file, encoding="utf-8") as file:
                return file.read().strip()
        value = os.environ.get(self.dsn_env, "")
        if not value:
            raise ConfigError(
                f"sidecar.store.dsnEnv: the environment variable {self.dsn_env} is empty"
            )
        return value


@dataclass(frozen=True)
class SidecarConfig:
    model_name: str
    namespace: str
    revision: str
    spec: ModelSpec
    score_path: JsonPath
    attributes: tuple[SourcedAttribute, ...]
    retention_seconds: float
    evaluation_interval_seconds: float
    statistics_span_seconds: float
    bucket_seconds: float
    token_file: str
    token_env: str
    store: StoreConfig
    journal_dir: str  # where answered predictions wait for the store (see journal.py)
    upstream: str
    host: str
    port: int
    prediction_paths: frozenset[str]
    max_body_bytes: int
    upstream_timeout_seconds: float
    upstream_connections: int  # to the model server, for predictions; as many for other paths
    header_timeout_seconds: float  # a request's head must arrive within this, else 408
    idle_timeout_seconds: float  # a connection silent this long is closed (408 mid-request)
    replica_id: str
    tls_cert_file: str  # with tls_key_file: serve HTTPS (both empty: plain HTTP)
    tls_key_file: str


def template(model: ClinicalModel) -> dict[str, Any]:
    """The configuration the operator writes for the model's pods, placeholders unfilled."""
    store = model.spec["outcomes"].get("store", {"type": "sqlite"})
    if store.get("type", "sqlite") == "sqlite":
        store_config = {"type": "sqlite", "path": SQLITE_FILE}
    else:
        store_config = {"type": "postgresql", "dsnEnv": DSN_ENV}
    return {
        "model": {
            "name": model.name,
            "namespace": model.namespace,
            "revision": REVISION_PLACEHOLDER,
        },
        "spec": {key: model.spec[key] for key in SPEC_KEYS if key in model.spec},
        "sidecar": {
            "host": POD_IP_PLACEHOLDER,
            "port": names.SIDECAR_PORT,
            "upstream": f"http://{POD_IP_PLACEHOLDER}:{names.MODEL_PORT}",
            "tokenEnv": TOKEN_ENV,
            "store": store_config,
        },
    }


def write_template(model: ClinicalModel) -> str:
    """The template as the ConfigMap's file holds it."""
    return yaml.safe_dump(template(model), sort_keys=True)


def load_config(path: str) -> SidecarConfig:
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.safe_load(file)
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"the configuration file {path} is not valid YAML: {error}") from None
    return parse_config(document)


def parse_config(document: object) -> SidecarConfig:
    root = _mapping(document, "the configuration")
    _known(root, "the configuration", {"model", "spec", "sidecar"})
    model = _mapping(root.get("model"), "model")
    _known(model, "model", {"name", "namespace", "revision"})
    name, namespace = _name(model, "name"), _name(model, "namespace")
    spec_document = _mapping(root.get("spec"), "spec")
    try:
        spec = parse_model(
            {
                "apiVersion": "equiguard.io/v1alpha1",
                "kind": "ClinicalModel",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec_document,
            }
        )
    except SpecError as error:
        raise ConfigError(str(error)) from None
    prediction = _mapping(spec_document.get("prediction"), "spec.prediction")
    try:
        score_path = compile_path(_text(prediction, "scorePath", "spec.prediction"))
    except JsonPathError as error:
        raise ConfigError(f"spec.prediction.scorePath: {error}") from None
    outcomes = _mapping(spec_document.get("outcomes", {}), "spec.outcomes")
    sidecar = _mapping(root.get("sidecar", {}), "sidecar")
    _known(
        sidecar,
        "sidecar",
        {
            "upstream",
            "host",
            "port",
            "predictionPaths",
            "maxBodyBytes",
            "upstreamTimeout",
            "upstreamConnections",
            "headerTimeout",
            "idleTimeout",
            "replicaId",
            "tokenFile",
            "tokenEnv",
            "store",
            "journalDir",
            "bucket",
            "tls",
        },
    )
    token_file = _text(sidecar, "tokenFile", "sidecar", "")
    token_env = _text(sidecar, "tokenEnv", "sidecar", "")
    if bool(token_file) == bool(token_env):
        raise ConfigError(
            "sidecar: set exactly one of tokenFile (a mounted Secret) or tokenEnv "
            "(an environment variable) for the bearer token of /v1/outcomes and /v1/records"
        )
    paths = sidecar.get("predictionPaths", ["/predict"])
    if (
        not isinstance(paths, list)
        or not paths
        or not all(isinstance(p, str) and p.startswith("/") for p in paths)
    ):
        raise ConfigError("sidecar.predictionPaths must be a list of paths such as ['/predict']")
    tls = _mapping(sidecar.get("tls", {}), "sidecar.tls")
    _known(tls, "sidecar.tls", {"certFile", "keyFile"})
    if bool(tls.get("certFile")) != bool(tls.get("keyFile")):
        raise ConfigError("sidecar.tls needs both certFile and keyFile (a mounted TLS Secret)")
    store = _store(sidecar.get("store", {"type": "sqlite"}))
    span = max([_seconds(MIN_STATISTICS_SPAN, "")] + [slo.window_seconds for slo in spec.slos])
    shortest = min([span] + [slo.window_seconds for slo in spec.slos])
    return SidecarConfig(
        model_name=name,
        namespace=namespace,
        revision=_text(model, "revision", "model"),
        spec=spec,
        score_path=score_path,
        attributes=read_sources(spec_document),
        retention_seconds=_duration(
            outcomes, "retention", "spec.outcomes", OUTCOMES_DEFAULTS["retention"]
        ),
        evaluation_interval_seconds=_duration(
            _mapping(spec_document.get("evaluation", {}), "spec.evaluation"),
            "interval",
            "spec.evaluation",
            str(EVALUATION_DEFAULTS["interval"]),
        ),
        statistics_span_seconds=span,
        # Buckets fine enough that the shortest SLO window spans a few dozen.
        bucket_seconds=_duration(
            sidecar, "bucket", "sidecar", f"{max(60, min(3600, int(shortest // 24) // 60 * 60))}s"
        ),
        token_file=token_file,
        token_env=token_env,
        store=store,
        journal_dir=_text(sidecar, "journalDir", "sidecar", _default_journal_dir(store)),
        upstream=_url(
            _text(sidecar, "upstream", "sidecar", f"http://127.0.0.1:{names.MODEL_PORT}")
        ),
        host=_text(sidecar, "host", "sidecar", "0.0.0.0"),
        port=_integer(sidecar, "port", "sidecar", names.SIDECAR_PORT, 1, 65535),
        prediction_paths=frozenset(paths),
        max_body_bytes=_integer(
            sidecar, "maxBodyBytes", "sidecar", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 30
        ),
        upstream_timeout_seconds=_duration(sidecar, "upstreamTimeout", "sidecar", "30s"),
        upstream_connections=_integer(
            sidecar, "upstreamConnections", "sidecar", DEFAULT_UPSTREAM_CONNECTIONS, 1, 1024
        ),
        header_timeout_seconds=_duration(sidecar, "headerTimeout", "sidecar", "10s"),
        idle_timeout_seconds=_duration(sidecar, "idleTimeout", "sidecar", "60s"),
        replica_id=_text(sidecar, "replicaId", "sidecar", "") or socket.gethostname(),
        tls_cert_file=_text(tls, "certFile", "sidecar.tls", ""),
        tls_key_file=_text(tls, "keyFile", "sidecar.tls", ""),
    )


def read_sources(spec: Mapping[str, object]) -> tuple[SourcedAttribute, ...]:
    """Where each declared attribute is read from (the engine has checked the rest)."""
    subgroups = _mapping(spec.get("subgroups"), "spec.subgroups")
    attributes = subgroups.get("attributes")
    if not isinstance(attributes, list):
        raise ConfigError("spec.subgroups.attributes must be a list")
    found: list[SourcedAttribute] = []
    for index, attribute in enumerate(attributes):
        where = f"spec.subgroups.attributes[{index}].source"
        source = _mapping(_mapping(attribute, where).get("source"), where)
        if len(source) != 1 or next(iter(source)) not in _SOURCES:
            raise ConfigError(f"{where} must have exactly one of field, header or context")
        ((kind, key),) = source.items()
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}.{kind} must be a non-empty string")
        found.append(SourcedAttribute(str(attribute["name"]), _SOURCES[kind], key))
    return tuple(found)


def _default_journal_dir(store: StoreConfig) -> str:
    """Beside the SQLite file; for PostgreSQL, in the working directory (the pod's data volume)."""
    return os.path.join(os.path.dirname(store.path), JOURNAL_DIR) if store.path else JOURNAL_DIR


def _store(value: object) -> StoreConfig:
    store = _mapping(value, "sidecar.store")
    _known(store, "sidecar.store", {"type", "path", "dsnFile", "dsnEnv", "lease"})
    kind = store.get("type", "sqlite")
    if kind == "sqlite":
        return StoreConfig(
            "sqlite", _text(store, "path", "sidecar.store", SQLITE_FILE), "", "", 0.0
        )
    if kind == "postgresql":
        dsn_file = _text(store, "dsnFile", "sidecar.store", "")
        dsn_env = _text(store, "dsnEnv", "sidecar.store", "")
        if bool(dsn_file) == bool(dsn_env):
            raise ConfigError(
                "sidecar.store: a postgresql store needs exactly one of dsnFile or dsnEnv"
            )
        lease = _duration(store, "lease", "sidecar.store", "5m")
        return StoreConfig("postgresql", "", dsn_file, dsn_env, lease)
    raise ConfigError(f"sidecar.store.type must be {' or '.join(STORE_KINDS)}, not {kind!r}")


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _known(mapping: Mapping[str, object], where: str, allowed: set[str]) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; "
            f"allowed fields are {', '.join(sorted(allowed))}"
        )


def _text(mapping: Mapping[str, object], key: str, where: str, default: str | None = None) -> str:
    value = mapping.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _name(model: Mapping[str, object], key: str) -> str:
    value = _text(model, key, "model")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value):
        raise ConfigError(f"model.{key} must be a Kubernetes name such as 'readmission-risk'")
    return value


def _integer(
    mapping: Mapping[str, object], key: str, where: str, default: int, low: int, high: int
) -> int:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key} must be an integer from {low} to {high}")
    return value


def _duration(mapping: Mapping[str, object], key: str, where: str, default: str) -> float:
    return _seconds(mapping.get(key, default), f"{where}.{key}")


def _seconds(value: object, where: str) -> float:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a duration written as a string, such as '30m' or '7d'")
    try:
        return parse_duration(value)
    except (SpecError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _url(value: str) -> str:
    if not re.fullmatch(r"https?://[^/\s]+", value):
        raise ConfigError(
            "sidecar.upstream must be a scheme and host such as "
            f"'http://127.0.0.1:3000', not {value!r}"
        )
    return value
