"""The sidecar's configuration file: what it accepts and the sentences it refuses with."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from equiguard.contracts.sidecar_config import ConfigError, load_config, parse_config

CONFIG: dict[str, Any] = {
    "model": {"name": "readmission-risk", "namespace": "clinical", "revision": "v1"},
    "spec": {
        "prediction": {"scorePath": "$.risk", "threshold": "0.30"},
        "subgroups": {
            "attributes": [
                {"name": "race", "source": {"context": "race"}, "values": ["White", "Black"]},
                {
                    "name": "age_band",
                    "source": {"field": "age"},
                    "bins": {"edges": ["18", "65"], "labels": ["18-64", "65+"]},
                },
                {
                    "name": "language",
                    "source": {"header": "X-Patient-Language"},
                    "values": ["English", "Spanish"],
                },
            ],
        },
        "slos": [
            {
                "name": "tpr-gap-race",
                "metric": "tpr",
                "attribute": "race",
                "comparison": "maxGap",
                "threshold": "0.10",
                "window": "14d",
                "minSamples": 50,
                "confidence": "0.95",
                "consecutiveBreaches": 2,
                "action": "Rollback",
            },
        ],
        "outcomes": {"retention": "30d"},
        "evaluation": {"interval": "2m"},
    },
    "sidecar": {
        "upstream": "http://127.0.0.1:3000",
        "tokenEnv": "TOKEN",
        "store": {"type": "sqlite", "path": "predictions.db"},
    },
}


def variant(**changes: Any) -> dict[str, Any]:
    """CONFIG with dotted paths replaced (a value of None deletes the key)."""
    document = copy.deepcopy(CONFIG)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = document
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return document


def test_reads_sources_score_path_and_spec_from_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    config = load_config(str(path))
    assert [(a.name, a.source, a.key) for a in config.attributes] == [
        ("race", "context", "race"),
        ("age_band", "field", "age"),
        ("language", "header", "X-Patient-Language"),
    ]
    assert config.score_path.find({"risk": 0.4}) == 0.4
    assert config.spec.threshold == pytest.approx(0.30)
    assert config.retention_seconds == 30 * 86400
    assert config.evaluation_interval_seconds == 120
    # The statistics cover the longest SLO window.
    assert config.statistics_span_seconds == 14 * 86400
    assert config.prediction_paths == frozenset({"/predict"})
    assert config.store.kind == "sqlite"


def test_statistics_cover_seven_days_even_when_slos_are_shorter() -> None:
    config = parse_config(variant(spec__slos=[]))
    assert config.statistics_span_seconds == 7 * 86400


def test_statistics_cover_the_early_warnings_reference_window_and_its_buckets_its_window() -> None:
    config = parse_config(variant(spec__earlyWarning={"window": "2h", "referenceWindow": "60d"}))
    assert config.statistics_span_seconds == 60 * 86400
    assert config.bucket_seconds == 300  # the 2-hour window spans 24 buckets
    defaults = parse_config(variant(spec__earlyWarning={}))
    assert defaults.statistics_span_seconds == 30 * 86400  # referenceWindow's default


def test_a_bad_early_warning_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"spec\.earlyWarning\.window"):
        parse_config(variant(spec__earlyWarning={"window": "soon"}))


@pytest.mark.parametrize(
    ("changes", "sentence"),
    [
        ({"sidecar__tokenFile": "/t"}, "set exactly one of tokenFile"),
        ({"sidecar__tokenEnv": None}, "set exactly one of tokenFile"),
        ({"sidecar__port": 70000}, "sidecar.port must be an integer from 1 to 65535"),
        ({"sidecar__tls": {"certFile": "/tls/crt"}}, "sidecar.tls needs both certFile and keyFile"),
        ({"sidecar__upstream": "127.0.0.1:3000"}, "sidecar.upstream must be a scheme and host"),
        ({"sidecar__colour": "red"}, "sidecar: unknown field 'colour'"),
        ({"sidecar__store": {"type": "mysql"}}, "sidecar.store.type must be sqlite or postgresql"),
        ({"sidecar__store": {"type": "postgresql"}}, "needs exactly one of dsnFile or dsnEnv"),
        ({"spec__prediction__scorePath": "risk"}, "spec.prediction.scorePath"),
        ({"spec__outcomes__retention": "45 days"}, "spec.outcomes.retention"),
        ({"model__name": "Readmission Risk"}, "model.name must be a Kubernetes name"),
        ({"model__revision": None}, "model.revision must be a non-empty string"),
    ],
)
def test_refuses_a_bad_file_with_a_sentence_naming_the_field(
    changes: dict[str, Any], sentence: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(variant(**changes))
    assert sentence in str(raised.value)


def test_refuses_an_attribute_without_a_single_source() -> None:
    document = variant()
    document["spec"]["subgroups"]["attributes"][0]["source"] = {"context": "race", "field": "race"}
    with pytest.raises(ConfigError, match=r"attributes\[0\]\.source must have exactly one of"):
        parse_config(document)


def test_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(str(tmp_path / "missing.yaml"))


def test_the_journal_lies_beside_the_sqlite_file_or_in_the_working_directory() -> None:
    beside = variant(sidecar__store={"type": "sqlite", "path": "/data/predictions.db"})
    shared = variant(sidecar__store={"type": "postgresql", "dsnEnv": "DSN"})
    chosen = variant(sidecar__journalDir="/spool/journal")

    assert parse_config(beside).journal_dir == "/data/prediction-journal"
    assert parse_config(shared).journal_dir == "prediction-journal"
    assert parse_config(chosen).journal_dir == "/spool/journal"
