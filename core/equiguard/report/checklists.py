"""Reporting checklists: what the report's content fills of TRIPOD+AI's subgroup,
performance and updating items and of the EU AI Act's post-market monitoring
(Art. 72). Each item is `filled`, `partly` (with what the owner must add) or
`n.a.`, decided from the content alone, so the section is as current as the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRIPOD_AI = "TRIPOD+AI (Collins et al., BMJ 2024;385:e078378)"
AI_ACT = "EU AI Act, Regulation (EU) 2024/1689, Article 72 (post-market monitoring)"
FILLED, PARTLY, NOT_APPLICABLE = "filled", "partly", "n.a."


def _item(topic: str, status: str, evidence: str, owner: str = "") -> dict[str, str]:
    return {"item": topic, "status": status, "evidence": evidence, "ownerMustAdd": owner}


def checklists(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"framework": TRIPOD_AI, "items": _tripod(content)},
        {"framework": AI_ACT, "items": _post_market(content)},
    ]


def _tripod(content: Mapping[str, Any]) -> list[dict[str, str]]:
    slos, development = content["slos"], content["development"]
    attributes = [a["name"] for a in content["subgroups"]["attributes"]]
    recalibrations = [d for d in content["decisions"] if d["decision"] == "RecalibrationPublished"]
    inconclusive = [
        s["name"]
        for s in slos
        if (s["current"] or {}).get("verdict") != "Met"
        and (s["current"] or {}).get("verdict") != "Violated"
    ]
    envelope = content["model"].get("changeControl")
    return [
        _item(
            "Methods: intended use and target population",
            FILLED,
            "The ClinicalModel's intendedUse, in the model section.",
        ),
        _item(
            "Methods: fairness, the methods used to address it and why",
            FILLED if slos else PARTLY,
            f"{len(slos)} equity SLOs over the subgroups {', '.join(attributes)}, each "
            "with its comparison, threshold, window and action.",
            "" if slos else "Declare equity SLOs, or say why none apply.",
        ),
        _item(
            "Methods: performance measures (discrimination, calibration, clinical utility) "
            "with their uncertainty",
            FILLED if development else PARTLY,
            "Development audit: AUROC, calibration intercept and slope, O:E, net benefit and "
            "the decision curve, with intervals."
            if development
            else "Live SLO metrics with intervals only.",
            "" if development else "Run the report with --development-records.",
        ),
        _item(
            "Results: performance in key subgroups",
            FILLED if development else PARTLY,
            "Per-group estimates with intervals, live and in development; counts 1-10 withheld.",
            "" if development else "Give the development records.",
        ),
        _item(
            "Methods and results: model updating (recalibration)",
            FILLED if recalibrations else PARTLY if envelope else NOT_APPLICABLE,
            f"{len(recalibrations)} recalibrations published, each with a change record."
            if recalibrations
            else "A change-control envelope is declared; no update yet."
            if envelope
            else "The model declares no change-control envelope.",
            "" if recalibrations or not envelope else "Nothing until an update happens.",
        ),
        _item(
            "Discussion: limitations, including groups with too little evidence",
            PARTLY,
            ("SLOs not yet decided: " + ", ".join(inconclusive))
            if inconclusive
            else "Every SLO has a decided verdict.",
            "The discussion of limitations and of their clinical consequence.",
        ),
        _item(
            "Methods: sample size",
            PARTLY,
            "Each undecided SLO states how many more outcomes per group would decide it.",
            "The justification of the development and evaluation sample sizes.",
        ),
    ]


def _post_market(content: Mapping[str, Any]) -> list[dict[str, str]]:
    evaluated = content["state"]["lastEvaluationTime"]
    slos = content["slos"]
    return [
        _item(
            "72(1): a post-market monitoring system, established and documented",
            FILLED,
            "equiguard's operator evaluates every equity SLO continuously and records each "
            "decision as an EquityDecision; this report documents it.",
        ),
        _item(
            "72(2): relevant data on performance actively and systematically collected, "
            "documented and analysed throughout the lifetime",
            FILLED if evaluated else PARTLY,
            f"Last evaluation {evaluated}; {len(slos)} SLOs on joined outcomes per subgroup."
            if evaluated
            else "No evaluation recorded yet.",
            "" if evaluated else "Deploy the model and join outcomes.",
        ),
        _item(
            "72(2): analysis of the interaction with other AI systems",
            NOT_APPLICABLE,
            "equiguard monitors this model alone.",
            "If the model interacts with other AI systems, their analysis.",
        ),
        _item(
            "72(3): a post-market monitoring plan in the technical documentation",
            PARTLY,
            "The SLOs, windows, actions and change-control envelope are the plan's "
            "monitoring content.",
            "The plan in the Commission's template, within the Annex IV documentation.",
        ),
        _item(
            "72(4): integration with an existing post-market surveillance system",
            PARTLY,
            "Decision records and change records can be exported as they are.",
            "Where the model is a medical device, its integration into the device's "
            "surveillance system.",
        ),
    ]
