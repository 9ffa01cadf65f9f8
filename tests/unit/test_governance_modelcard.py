"""The CHAI Applied Model Card that `equiguard modelcard` writes is valid against the
published XSD it ships (schema v0.2), and holds equiguard's own figures: the
development audit's metrics and the live SLO verdicts of the model's status."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from equiguard.engine.audit import build_report
from equiguard.engine.scored_records import read_records
from equiguard.engine.spec import parse_model
from equiguard.governance import modelcard
from equiguard.governance.card_main import CardError, read_owner_facts
from helpers.report_story import story

REPO = Path(__file__).resolve().parents[2]
SCORED = REPO / "examples/readmission/scored-records.csv"
SCHEMA = Path(modelcard.__file__).parent / modelcard.SCHEMA_FILE
NS = {"mc": modelcard.NAMESPACE}


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))


def development() -> dict[str, object]:
    model = story().model
    spec = parse_model(model)
    return build_report(spec, read_records(str(SCORED), spec), 0.95, suppress=True)


def results(card: ET.Element, section: str) -> dict[str, dict[str, object]]:
    found = card.findall(f"mc:KeyMetrics/mc:{section}/mc:Results/mc:MetricResult", NS)
    return {
        str(r.findtext("mc:Label", namespaces=NS)): json.loads(
            str(r.findtext("mc:ValueJson", namespaces=NS))
        )
        for r in found
    }


def test_the_card_is_valid_against_the_published_schema_and_holds_the_audit_and_live_figures(
    schema: xmlschema.XMLSchema,
) -> None:
    history = story()
    audit = development()
    xml = modelcard.model_card(history.model, audit, {"FundingSource": "Hospital operating budget"})
    schema.validate(xml.decode("utf-8"))  # raises with the path of the first error
    card = ET.fromstring(xml)
    spec = history.model["spec"]
    assert card.findtext("mc:ModelSummary/mc:Summary", namespaces=NS) == spec["intendedUse"]
    overall = audit["metrics"]["overall"]["all"]  # type: ignore[index]
    usefulness = results(card, "UsefulnessUsabilityEfficacy")
    assert usefulness["AUROC"]["estimate"] == round(overall["auroc"], 4)
    assert usefulness["AUROC"]["lower"] == round(overall["intervals"]["auroc"][0], 4)
    benefit = usefulness["Net benefit at the decision threshold"]
    assert benefit["estimate"] == round(overall["netBenefit"], 4)
    safety = results(card, "SafetyReliability")
    assert safety["Calibration slope"]["estimate"] == round(overall["calibrationSlope"], 4)
    fairness = results(card, "FairnessEquity")
    for slo in history.model["status"]["slos"]:
        if slo.get("estimate") is None:
            continue
        assert fairness[f"{slo['name']} ({slo['verdict']})"]["estimate"] == float(slo["estimate"])
    facts = "mc:TrustIngredients/mc:TransparencyInformation/mc:"
    assert card.findtext(facts + "FundingSource", namespaces=NS) == "Hospital operating budget"
    assert card.findtext(facts + "StakeholdersConsulted", namespaces=NS) == (
        modelcard.OWNER_MUST_ADD
    )


def test_a_card_without_a_development_assessment_is_still_valid(
    schema: xmlschema.XMLSchema,
) -> None:
    schema.validate(modelcard.model_card(story().model, None, {}).decode("utf-8"))


def test_the_schema_refuses_a_card_that_lacks_a_required_section(
    schema: xmlschema.XMLSchema,
) -> None:
    card = ET.fromstring(modelcard.model_card(story().model, None, {}))
    card.remove(card.find("mc:Warnings", NS))  # type: ignore[arg-type]
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="Warnings"):
        schema.validate(ET.tostring(card, encoding="unicode"))


def test_owner_facts_with_an_unknown_field_are_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text("FundingSource: grant\nColour: blue\n", encoding="utf-8")
    with pytest.raises(CardError, match="unknown fields Colour; the fields are ModelDeveloper"):
        read_owner_facts(str(path))
