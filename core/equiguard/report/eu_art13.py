"""The fairness-related items of the EU AI Act's instructions for use (Article 13(3)).

Regulation (EU) 2024/1689 asks the provider of a high-risk AI system to give
its deployers instructions for use with, among others, the system's intended
purpose, the accuracy it was tested to, the circumstances that may lead to
risks to health, safety or fundamental rights, its performance for the groups
of persons it is meant for, the data it was trained and tested on, the changes
pre-determined at its conformity assessment, the human oversight measures,
its maintenance, and how its logs are kept. This set fills each from what the
cluster holds, or from the owner's source-attributes file, or says it is
missing. (Article 72's post-market monitoring plan is a checklist of the
report, `checklists`.)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from equiguard.report import attributes
from equiguard.report.material import ReportInput

NAME = "eu-ai-act-art13"
TITLE = "Instructions for use on fairness (EU AI Act, Article 13)"
BASIS = (
    "The items of Article 13(3) of Regulation (EU) 2024/1689 that bear on how the system "
    "performs for the groups of persons it is intended for, and how that is kept so."
)

PURPOSE = "13(3)(b)(i) Intended purpose"
ACCURACY = "13(3)(b)(ii) Level of accuracy, and its metrics, tested and validated"
RISKS = "13(3)(b)(iii) Circumstances that may lead to risks to health, safety or rights"
GROUPS = "13(3)(b)(v) Performance for the persons or groups it is intended for"
DATA = "13(3)(b)(vi) Input data, and the training, validation and testing data"
CHANGES = "13(3)(c) Changes to the system and its performance pre-determined by the provider"
OVERSIGHT = "13(3)(d) Human oversight measures"
MAINTENANCE = "13(3)(e) Expected lifetime and maintenance, with its frequency"
LOGS = "13(3)(f) Mechanisms to collect, store and interpret the logs"
CATEGORY_ORDER = (PURPOSE, ACCURACY, RISKS, GROUPS, DATA, CHANGES, OVERSIGHT, MAINTENANCE, LOGS)

# Owner-provided attributes: file key -> (category, attribute). Keys shared with
# the HTI-1 set mean the same text, so one file serves both.
OWNER_KEYS: dict[str, tuple[str, str]] = {
    "developmentFairness": (ACCURACY, "Accuracy and fairness in testing, per group"),
    "knownRisks": (
        RISKS,
        "Known or foreseeable circumstances, in intended use or foreseeable misuse, that "
        "may lead to unequal performance or harm for a group",
    ),
    "inputFeatures": (DATA, "Specifications of the input data"),
    "demographicRepresentativeness": (
        DATA,
        "Training, validation and testing data, and how they represent the groups",
    ),
    "humanOversight": (
        OVERSIGHT,
        "How people oversee the output, interpret it and can disregard it",
    ),
    "updateProcess": (MAINTENANCE, "Expected lifetime, updates and their frequency"),
}


# The owner's text for a key of this set, with what was measured when there is some.
_owner = functools.partial(attributes.owner_item, OWNER_KEYS)


def _oversight(report: ReportInput) -> attributes.Filled:
    control = report.model.change_control
    approval = control is not None and control.approval_required
    text = (
        "Every verdict, with its interval and the outcomes behind it, is shown to the model's "
        "owners (status, alerts, this report) before and after any action. "
        + (
            "A recalibrated revision serves only after a person records an approval "
            "(`equiguard approve`). "
            if approval
            else ""
        )
        + f"Enforcement is {report.model.enforcement}"
        + (
            ": actions are recorded for people to take, never taken."
            if report.model.enforcement == "DryRun"
            else "."
        )
    )
    return attributes.Filled(text, "spec.changeControl.approvalRequired, spec.enforcement")


def source_attributes(report: ReportInput, content: Mapping[str, Any]) -> list[dict[str, str]]:
    """The set's items, in the article's order."""
    provided = dict(report.source_attributes)
    maintenance = attributes.monitoring(report)
    items = [
        attributes.intended_use(report, PURPOSE, "Intended purpose, population and users"),
        _owner("developmentFairness", provided, attributes.development_results(content)),
        _owner("knownRisks", provided),
        attributes.filled_item(
            GROUPS,
            "Performance per group in local data (last results)",
            attributes.last_results(content),
            "measured",
        ),
        attributes.filled_item(
            GROUPS, "How performance per group is monitored", maintenance, "ClinicalModel spec"
        ),
        _owner("inputFeatures", provided),
        _owner("demographicRepresentativeness", provided),
        attributes.filled_item(
            CHANGES,
            "The change-control envelope",
            attributes.change_control(report),
            "ClinicalModel spec",
        ),
        _owner("humanOversight", provided, _oversight(report)),
        _owner("updateProcess", provided, attributes.corrections(report)),
        attributes.filled_item(
            LOGS, "Decision records", attributes.decision_log(report), "measured"
        ),
    ]
    return sorted(items, key=lambda item: CATEGORY_ORDER.index(item["category"]))
