"""The ClinicalModel manifest as the engine reads it; errors name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from equiguard.engine.spec import SpecError, parse_duration, parse_model
from equiguard.engine.subgroups import CellLayout

EXAMPLE = Path(__file__).parents[2] / "examples" / "readmission" / "clinicalmodel.yaml"


def example() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return manifest


def test_reads_the_readmission_example_with_crd_defaults() -> None:
    model = parse_model(example())
    assert model.name == "readmission-risk" and model.threshold == 0.3
    age = model.subgroups.attributes[2]
    assert age.edges == (18.0, 45.0, 65.0, 80.0) and age.groups == (
        "18-44",
        "45-64",
        "65-79",
        "80+",
    )
    assert model.subgroups.intersections[0].groups[:2] == ("White/female", "White/male")
    tpr_gap = model.slos[0]
    assert (tpr_gap.metric, tpr_gap.comparison, tpr_gap.threshold) == ("tpr", "maxGap", 0.10)
    assert tpr_gap.window_seconds == 7 * 86400 and tpr_gap.min_samples == 50
    assert model.slos[1].reference == "overall"


def test_defaults_match_the_crd_when_fields_are_omitted() -> None:
    manifest = example()
    manifest["spec"]["slos"] = [
        {
            "name": "s",
            "metric": "fpr",
            "attribute": "sex",
            "comparison": "maxGap",
            "threshold": "0.05",
        }
    ]
    slo = parse_model(manifest).slos[0]
    assert (
        slo.window_seconds,
        slo.min_samples,
        slo.confidence,
        slo.consecutive_breaches,
        slo.action,
    ) == (7 * 86400, 50, 0.95, 2, "Alert")


def test_numeric_bins_get_default_labels() -> None:
    manifest = example()
    manifest["spec"]["subgroups"]["attributes"][2]["bins"] = {"edges": ["18", "45"]}
    assert parse_model(manifest).subgroups.attributes[2].labels == ("18-45", "45+")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ["spec", "slos", 0, "metric"],
            "accuracy",
            "spec.slos[0].metric: 'accuracy' is not a metric",
        ),
        (
            ["spec", "slos", 1, "attribute"],
            "zip",
            "spec.slos[1].attribute: 'zip' is not a declared",
        ),
        (["spec", "slos", 0, "threshold"], "ten", "spec.slos[0].threshold: 'ten' is not a number"),
        (["spec", "slos", 0, "window"], "7w", "spec.slos[0].window: '7w' is not a duration"),
        (
            ["spec", "slos", 0, "minSamples"],
            5,
            "spec.slos[0].minSamples: must be a whole number of at least 11",
        ),
        (["spec", "slos", 0, "confidence"], "1.5", "spec.slos[0].confidence: must be in [0.50, 1)"),
        (
            ["spec", "slos", 1, "reference"],
            "Martian",
            "spec.slos[1].reference: 'Martian' is not overall",
        ),
        (
            ["spec", "slos", 1, "threshold"],
            "1.2",
            "spec.slos[1].threshold: a ratioToReference threshold",
        ),
        (
            ["spec", "slos", 0, "comparison"],
            "gapToReference",
            "spec.slos[0].reference: gapToReference needs",
        ),
        (
            ["spec", "prediction", "threshold"],
            "1.5",
            "spec.prediction.threshold: must lie in [0, 1]",
        ),
        (
            ["spec", "subgroups", "attributes", 0, "values", 1],
            "unknown",
            "attributes[0].values[1]: unknown is",
        ),
        (
            ["spec", "subgroups", "attributes", 0, "name"],
            "overall",
            "attributes[0].name: overall names",
        ),
        (
            ["spec", "subgroups", "attributes", 2, "bins", "edges"],
            ["65", "18"],
            "bins.edges: must be strictly",
        ),
        (
            ["spec", "subgroups", "intersections", 0, "of"],
            ["race", "zip"],
            "intersections[0].of[1]: 'zip'",
        ),
        (["kind"], "Deployment", "kind: must be ClinicalModel"),
    ],
)
def test_bad_manifests_are_refused_with_the_field_path(
    path: list[Any], value: Any, message: str
) -> None:
    manifest = copy.deepcopy(example())
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SpecError) as error:
        parse_model(manifest)
    assert message in str(error.value)


def test_durations_are_seconds() -> None:
    assert [parse_duration(t) for t in ("30s", "30m", "1h", "7d")] == [30, 1800, 3600, 604800]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("0d")


def test_rows_go_to_declared_cells_and_everything_else_to_unknown() -> None:
    layout = CellLayout.from_spec(parse_model(example()).subgroups)
    columns = {
        "race": ["Black", "Martian", None, "Black", ""],
        "sex": ["female", "female", "male", None, "male"],
        "age_band": ["70", 17, 44.99, "old", float("nan")],
        "adi_quintile": [3, 3.0, "3", 6, True],
    }
    cells = layout.assign(columns, 5)
    names = [[layout.cells[i] for i in row] for row in cells]
    race = [dict(row)["race"] for row in names]
    assert race == ["Black", "unknown", "unknown", "Black", "unknown"]
    assert [dict(row)["age_band"] for row in names] == [
        "65-79",
        "unknown",
        "18-44",
        "unknown",
        "unknown",
    ]
    assert [dict(row)["adi_quintile"] for row in names] == ["3", "3", "3", "unknown", "unknown"]
    assert [dict(row)["race_x_sex"] for row in names] == [
        "Black/female",
        "unknown",
        "unknown",
        "unknown",
        "unknown",
    ]
    assert [dict(row)["payer"] for row in names] == ["unknown"] * 5  # a missing column
    assert all(dict(row)["overall"] == "all" for row in names)


def test_one_row_is_assigned_like_a_column() -> None:
    layout = CellLayout.from_spec(parse_model(example()).subgroups)
    one = layout.assign_one({"race": "Asian", "sex": "male", "age_band": 50})
    batch = layout.assign({"race": ["Asian"], "sex": ["male"], "age_band": np.array([50.0])}, 1)[0]
    assert one.tolist() == batch.tolist()
    assert layout.cells[one[-1]] == ("race_x_sex", "Asian/male")
