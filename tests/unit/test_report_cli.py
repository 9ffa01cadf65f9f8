"""`equiguard report`'s arguments and the owner's source-attributes file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from equiguard.kube import Kube, Rejected
from equiguard.report import attribute_sets
from equiguard.report.gather import GatherError, decision_records, gather, read_source_attributes
from equiguard.report.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/readmission/source-attributes.yaml"


def test_the_example_source_attributes_file_provides_every_owner_attribute() -> None:
    provided = read_source_attributes(str(EXAMPLE))
    assert sorted(provided) == sorted(attribute_sets.OWNER_KEYS)
    assert all(text.strip() for text in provided.values())


def test_an_unknown_source_attribute_is_refused_with_the_known_keys(tmp_path: Path) -> None:
    path = tmp_path / "attributes.yaml"
    path.write_text("fairnessApproach: fine\nfairnessAproach: typo\n")
    with pytest.raises(GatherError) as error:
        read_source_attributes(str(path))
    assert "unknown source attributes fairnessAproach; the keys are inputFeatures" in str(
        error.value
    )


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


class FakeKube:
    """The API server as the report sees it: which kinds it serves, which objects it has."""

    def __init__(self, served: set[str], refusal: str = "404: the server could not find it"):
        self.served, self.refusal = served, refusal

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        return None  # a 404, whether the object or its whole kind is missing

    def list(self, api_version: str, kind: str, namespace: str, selector: object) -> list[Any]:
        raise Rejected(self.refusal)

    def has_api(self, api_version: str, kind: str) -> bool:
        return kind in self.served


def test_a_clinicalmodel_kind_the_api_server_does_not_serve_names_its_crd() -> None:
    with pytest.raises(GatherError, match="does not serve ClinicalModel: apply crds/clinicalm"):
        gather(cast(Kube, FakeKube(served=set())), "ns", "m", datetime.now(UTC))


def test_a_missing_clinicalmodel_is_named_with_its_namespace() -> None:
    with pytest.raises(GatherError, match="no ClinicalModel 'm' in namespace 'ns'"):
        gather(cast(Kube, FakeKube(served={"ClinicalModel"})), "ns", "m", datetime.now(UTC))


def test_an_equitydecision_kind_the_api_server_does_not_serve_names_its_crd() -> None:
    kube = cast(Kube, FakeKube(served={"ClinicalModel"}))
    with pytest.raises(GatherError, match=r"does not serve EquityDecision: apply crds/equityd"):
        decision_records(kube, "ns", "m")


def test_a_refused_list_of_a_served_kind_is_passed_on() -> None:
    kube = cast(Kube, FakeKube(served={"ClinicalModel", "EquityDecision"}, refusal="403: no"))
    with pytest.raises(Rejected, match="403: no"):
        decision_records(kube, "ns", "m")


def test_an_unknown_attribute_set_is_refused_by_the_command_naming_the_sets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["readmission-risk", "--attributes", "hti-5"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "--attributes: invalid choice: 'hti-5'" in error and "eu-ai-act-art13" in error
