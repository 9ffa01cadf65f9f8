"""The CHAI Applied Model Card (schema v0.2, schema/SOURCE.md) filled from what
equiguard knows: the ClinicalModel, the development assessment (`equiguard
audit` of held-out records, small counts withheld) and the live monitoring in
status. Every field the card asks for that equiguard does not know comes from
the owner's facts file, or says that the owner must add it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

NAMESPACE = "https://mc.chai.org/v0.2/schema.xsd"
SCHEMA_FILE = "schema/chai-applied-model-card-v0.2.xsd"
OWNER_MUST_ADD = "Not known to equiguard: the model owner must add it."
# The card's fields that only the owner can fill, by their element name.
OWNER_FIELDS = (
    "ModelDeveloper",
    "ReleaseStage",
    "ReleaseDate",
    "GlobalAvailability",
    "RegulatoryApproval",
    "PrimaryIntendedUsers",
    "HowToUse",
    "CautionedOutOfScopeSettings",
    "ClinicalRiskLevel",
    "KnownBiasesOrEthicalConsiderations",
    "ModelType",
    "InputDataSource",
    "OutputAndInputDataTypes",
    "FundingSource",
    "StakeholdersConsulted",
    "PeerReviewedPublications",
    "PatientConsentOrDisclosure",
)
# Development metrics reported under usefulness, with their labels.
USEFULNESS = (("auroc", "AUROC"), ("netBenefit", "Net benefit at the decision threshold"))
SAFETY = (
    ("calibrationSlope", "Calibration slope"),
    ("calibrationIntercept", "Calibration intercept"),
    ("observedExpectedRatio", "Observed/expected ratio"),
)
BIBLIOGRAPHY = """@article{vickers2006decision,
  title={Decision curve analysis: a novel method for evaluating prediction models},
  author={Vickers, Andrew J. and Elkin, Elena B.}, journal={Medical Decision Making},
  volume={26}, number={6}, pages={565--574}, year={2006}}
@article{vancalster2016calibration,
  title={A calibration hierarchy for risk models was defined: from utopia to empirical data},
  author={Van Calster, Ben and others}, journal={Journal of Clinical Epidemiology},
  volume={74}, pages={167--176}, year={2016}}"""


def model_card(
    model: Mapping[str, Any],
    development: Mapping[str, Any] | None,
    owner: Mapping[str, str],
) -> bytes:
    """The card as XML in the schema's namespace (development: an audit report, suppressed)."""
    spec, status = model.get("spec", {}), model.get("status") or {}
    fill = _Filler(owner)
    card = ET.Element(f"{{{NAMESPACE}}}AppliedModelCard")
    owners = spec.get("owners", [])
    fill.section(
        card,
        "BasicInfo",
        [
            ("ModelName", model.get("metadata", {}).get("name", "")),
            ("ModelDeveloper", None),
            (
                "DeveloperContact",
                "; ".join(
                    f"{o.get('name')} <{o['email']}>" if o.get("email") else str(o.get("name"))
                    for o in owners
                ),
            ),
        ],
    )
    fill.section(
        card,
        "ReleaseInfo",
        [
            ("ReleaseStage", None),
            ("ReleaseDate", None),
            ("ReleaseVersion", status.get("servingRevision") or spec.get("model", {}).get("bento")),
            ("GlobalAvailability", None),
            ("RegulatoryApproval", None),
        ],
    )
    summary = ET.SubElement(card, _tag("ModelSummary"))
    ET.SubElement(summary, _tag("Summary")).text = spec.get("intendedUse", "")
    keywords = ET.SubElement(summary, _tag("Keywords"))
    for word in ("equity monitoring", *_attributes(spec)):
        ET.SubElement(keywords, _tag("Keyword")).text = word
    fill.section(
        card,
        "UsesAndDirections",
        [
            ("IntendedUseAndWorkflow", spec.get("intendedUse", "")),
            ("PrimaryIntendedUsers", None),
            ("HowToUse", None),
            (
                "TargetedPatientPopulation",
                "Monitored per subgroup of " + ", ".join(_attributes(spec)) + ".",
            ),
            ("CautionedOutOfScopeSettings", None),
        ],
    )
    fill.section(
        card,
        "Warnings",
        [
            ("KnownRisksAndLimitations", _limitations(status)),
            ("KnownBiasesOrEthicalConsiderations", None),
            ("ClinicalRiskLevel", None),
        ],
    )
    trust = ET.SubElement(card, _tag("TrustIngredients"))
    fill.section(
        trust,
        "AISystemFacts",
        [
            (
                "OutcomesAndOutputs",
                "A risk score in [0, 1]; a patient is flagged when the score is at least "
                + str(spec.get("prediction", {}).get("threshold", "the decision threshold"))
                + ".",
            ),
            ("ModelType", None),
            ("InputDataSource", None),
            ("OutputAndInputDataTypes", None),
            ("DevelopmentDataCharacterization", _development_data(development)),
            ("BiasMitigationApproaches", _mitigation(spec)),
            ("OngoingMaintenance", _maintenance(spec)),
        ],
    )
    fill.section(
        trust,
        "TransparencyInformation",
        [
            ("FundingSource", None),
            ("StakeholdersConsulted", None),
        ],
    )
    metrics = ET.SubElement(card, _tag("KeyMetrics"))
    _key_metric(
        metrics,
        "UsefulnessUsabilityEfficacy",
        "Discrimination and net benefit on the development held-out records.",
        _overall(development, USEFULNESS),
        "Development held-out records",
        development,
    )
    _key_metric(
        metrics,
        "FairnessEquity",
        "Each equity SLO demonstrated Met on live labelled outcomes.",
        _live_slos(status),
        "Live monitoring of the serving revision",
        development,
    )
    _key_metric(
        metrics,
        "SafetyReliability",
        "Calibration of the risk score (slope 1, intercept 0, O:E 1).",
        _overall(development, SAFETY),
        "Development held-out records",
        development,
    )
    fill.section(
        card,
        "Resources",
        [
            (
                "EvaluationReferences",
                "The equity report and the decision records (EquityDecisions) "
                "of this ClinicalModel.",
            ),
            ("PeerReviewedPublications", None),
            ("PatientConsentOrDisclosure", None),
        ],
    )
    ET.SubElement(card, _tag("Bibliography")).text = BIBLIOGRAPHY
    ET.indent(card)
    xml: bytes = ET.tostring(
        card, encoding="utf-8", xml_declaration=True, default_namespace=NAMESPACE
    )
    return xml


class _Filler:
    def __init__(self, owner: Mapping[str, str]) -> None:
        self.owner = owner

    def section(
        self, parent: ET.Element, name: str, fields: Sequence[tuple[str, str | None]]
    ) -> None:
        """A section of text fields in order; None is the owner's (or said to be missing)."""
        element = ET.SubElement(parent, _tag(name))
        for field, value in fields:
            text = self.owner.get(field) if value is None else value
            if text is None and field in ("RegulatoryApproval",):
                continue  # optional in the schema: left out rather than guessed
            ET.SubElement(element, _tag(field)).text = text or OWNER_MUST_ADD


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def _attributes(spec: Mapping[str, Any]) -> list[str]:
    return [str(a.get("name")) for a in spec.get("subgroups", {}).get("attributes", [])]


def _limitations(status: Mapping[str, Any]) -> str:
    lines = [
        f"- SLO {s.get('name')}: {s.get('verdict')} ({s.get('reason')}) on {s.get('revision')}"
        for s in status.get("slos", [])
        if s.get("verdict") != "Met"
    ]
    return "\n".join(lines) or "Every equity SLO is demonstrated Met on live outcomes."


def _development_data(development: Mapping[str, Any] | None) -> str:
    if development is None:
        return OWNER_MUST_ADD
    records = development["records"]
    groups = [
        f"{dimension}: "
        + ", ".join(f"{g} {'withheld' if b['n'] is None else b['n']}" for g, b in blocks.items())
        for dimension, blocks in development["metrics"].items()
        if dimension != "overall"
    ]
    return (
        f"{records['rows']} held-out labelled records from {records['from']} to "
        f"{records['to']}. Labelled records per group (counts 1-10 withheld): " + "; ".join(groups)
    )


def _mitigation(spec: Mapping[str, Any]) -> str:
    control = spec.get("changeControl") or {}
    actions = sorted({str(s.get("action", "Alert")) for s in spec.get("slos", [])})
    text = f"Equity SLOs per subgroup with actions {', '.join(actions)} on a confirmed breach."
    if control:
        text += " Recalibration within a declared envelope: " + ", ".join(
            control.get("methods", [])
        )
        text += ", each candidate judged per subgroup on held-out outcomes."
    return text


def _maintenance(spec: Mapping[str, Any]) -> str:
    slos = "; ".join(
        f"{s.get('name')}: {s.get('metric')} {s.get('comparison')} {s.get('threshold')} over "
        f"{s.get('window', '7d')}"
        for s in spec.get("slos", [])
    )
    return (
        "equiguard evaluates every SLO continuously on joined outcomes, rolls back to the last "
        "good revision or recalibrates on a confirmed breach, and records every decision. "
        f"SLOs: {slos}."
    )


def _overall(
    development: Mapping[str, Any] | None, metrics: Sequence[tuple[str, str]]
) -> list[tuple[str, dict[str, Any]]]:
    if development is None:
        return []
    block = development["metrics"]["overall"]["all"]
    level = round(100 * float(development["confidence"]))
    results = []
    for metric, label in metrics:
        value, interval = block.get(metric), (block.get("intervals") or {}).get(metric)
        if value is None:
            continue
        entry: dict[str, Any] = {"kind": "single", "value": round(value, 4)}
        if interval and None not in interval:
            entry = {
                "kind": "estimate_ci",
                "estimate": round(value, 4),
                "lower": round(interval[0], 4),
                "upper": round(interval[1], 4),
                "level": level,
            }
        results.append((label, entry))
    return results


def _live_slos(status: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    results = []
    for slo in status.get("slos", []):
        estimate = _float(slo.get("estimate"))
        if estimate is None:
            continue
        entry: dict[str, Any] = {"kind": "single", "value": estimate}
        lower, upper = _float(slo.get("lower")), _float(slo.get("upper"))
        if lower is not None and upper is not None:
            entry = {"kind": "estimate_ci", "estimate": estimate, "lower": lower, "upper": upper}
        results.append((f"{slo.get('name')} ({slo.get('verdict')})", entry))
    return results


def _float(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _key_metric(
    parent: ET.Element,
    name: str,
    goal: str,
    results: list[tuple[str, dict[str, Any]]],
    testing: str,
    development: Mapping[str, Any] | None,
) -> None:
    element = ET.SubElement(parent, _tag(name))
    ET.SubElement(element, _tag("MetricGoal")).text = goal
    listed = ET.SubElement(element, _tag("Results"))
    if not results:  # the schema asks for at least one result
        results = [("No result yet", {"kind": "single", "value": None})]
    for label, value in results:
        result = ET.SubElement(listed, _tag("MetricResult"))
        ET.SubElement(result, _tag("Label")).text = label
        ET.SubElement(result, _tag("ValueJson")).text = json.dumps(value, separators=(",", ":"))
    ET.SubElement(element, _tag("Interpretation")).text = (
        "Intervals are equiguard's (Wilson, Newcombe, Wald or normal, as its engine documents); "
        "an SLO is Met only when its whole confidence bound lies within the SLO's threshold."
    )
    ET.SubElement(element, _tag("TestType")).text = (
        "Live monitoring" if name == "FairnessEquity" else "Retrospective held-out evaluation"
    )
    ET.SubElement(element, _tag("TestingDataDescription")).text = testing + (
        "" if development is not None or name == "FairnessEquity" else " (not provided)"
    )
    ET.SubElement(element, _tag("ValidationProcessAndJustification")).text = (
        "equiguard's metrics are tested equal to fairlearn, scikit-learn and statsmodels on the "
        "same rows; counts from 1 to 10 are withheld."
    )
