"""`equiguard report`'s arguments and the owner's source-attributes file."""

from __future__ import annotations

from pathlib import Path

import pytest
from equiguard.report import hti
from equiguard.report.gather import GatherError, read_source_attributes
from equiguard.report.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/readmission/source-attributes.yaml"


def test_the_example_source_attributes_file_provides_every_owner_attribute() -> None:
    provided = read_source_attributes(str(EXAMPLE))
    assert sorted(provided) == sorted(hti.OWNER_KEYS)
    assert all(text.strip() for text in provided.values())


def test_an_unknown_source_attribute_is_refused_with_the_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "attributes.yaml"
    path.write_text("fairnessApproach: fine\nfairnessAproach: typo\n")
    with pytest.raises(GatherError) as error:
        read_source_attributes(str(path))
    assert "unknown source attributes fairnessAproach; the keys are inputFeatures" in str(
        error.value)


def test_a_source_attributes_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "attributes.yaml"
    path.write_text("- a list\n")
    with pytest.raises(GatherError, match="must be a YAML mapping"):
        read_source_attributes(str(path))


def test_a_missing_file_is_named_before_the_cluster_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "held-out.csv"
    assert main(["readmission-risk", "--development-records", str(missing)]) == 2
    assert f"no such file: {missing}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
