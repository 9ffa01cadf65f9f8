"""The fairness-related source attributes of a predictive decision support intervention.

The ONC HTI-1 final rule (45 CFR 170.315(b)(11)(iv)(B)) lists source
attributes that certified health IT must let users review for a predictive
DSI, in nine categories. This attribute set fills in the ones about fairness:
what the cluster knows is measured or declared (how fairness is monitored and
how often, the last results in local data, how the model is corrected); what
only the developer knows (how fairness was handled and assessed in
development) comes from the owner's source-attributes file, and is marked
missing when absent rather than guessed. A proposed rule would remove these
attributes: they are one set among others (`attribute_sets`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from equiguard.report import attributes
from equiguard.report.material import ReportInput

NAME = "hti-1"
TITLE = "Source attributes on fairness (ONC HTI-1)"
BASIS = (
    "The fairness-related source attributes that 45 CFR 170.315(b)(11)(iv)(B) asks of a "
    "predictive decision support intervention."
)

# Owner-provided attributes: file key -> (category, attribute).
OWNER_KEYS: dict[str, tuple[str, str]] = {
    "inputFeatures": (
        "(4) Intervention development details and input features",
        "Use of race, ethnicity, language, sexual orientation, gender identity, sex, date of "
        "birth, social determinants of health and health status assessments as input features",
    ),
    "demographicRepresentativeness": (
        "(4) Intervention development details and input features",
        "Demographic representativeness of the training data",
    ),
    "fairnessApproach": (
        "(5) Process used to ensure fairness in development",
        "Approach taken to ensure that the intervention's output is fair",
    ),
    "biasManagement": (
        "(5) Process used to ensure fairness in development",
        "Approaches to manage, reduce or eliminate bias",
    ),
    "externalValidation": (
        "(6) External validation process",
        "Data source, setting and party of an external assessment of validity and fairness",
    ),
    "developmentFairness": (
        "(7) Quantitative measures of performance",
        "Fairness in test data from the same source as the training data",
    ),
    "externalFairness": (
        "(7) Quantitative measures of performance",
        "Fairness in data external to the training data's source",
    ),
    "updateProcess": (
        "(9) Update and continued validation or fairness assessment schedule",
        "Process and frequency by which the intervention is updated",
    ),
}
CATEGORY_ORDER = (
    "(2) Purpose of the intervention",
    "(4) Intervention development details and input features",
    "(5) Process used to ensure fairness in development",
    "(6) External validation process",
    "(7) Quantitative measures of performance",
    "(8) Ongoing maintenance of intervention implementation and use",
    "(9) Update and continued validation or fairness assessment schedule",
)


# The owner's text for a key of this set, with what was measured when there is some.
_owner = functools.partial(attributes.owner_item, OWNER_KEYS)


def source_attributes(report: ReportInput, content: Mapping[str, Any]) -> list[dict[str, str]]:
    """The fairness-related source attributes, in the rule's category order."""
    provided = dict(report.source_attributes)
    maintenance = "(8) Ongoing maintenance of intervention implementation and use"
    schedule = "(9) Update and continued validation or fairness assessment schedule"
    items = [
        attributes.intended_use(
            report, "(2) Purpose of the intervention", "Intended use, patient population and users"
        ),
        _owner("inputFeatures", provided),
        _owner("demographicRepresentativeness", provided),
        _owner("fairnessApproach", provided),
        _owner("biasManagement", provided),
        _owner("externalValidation", provided),
        _owner("developmentFairness", provided, attributes.development_results(content)),
        _owner("externalFairness", provided),
        attributes.filled_item(
            maintenance,
            "Process and frequency by which fairness is monitored over time",
            attributes.monitoring(report),
            "ClinicalModel spec",
        ),
        attributes.filled_item(
            maintenance,
            "Fairness of the intervention in local data (last results)",
            attributes.last_results(content),
            "measured",
        ),
        _owner("updateProcess", provided),
        attributes.filled_item(
            schedule,
            "Frequency by which performance is corrected when fairness risks are identified",
            attributes.corrections(report),
            "ClinicalModel spec",
        ),
    ]
    return sorted(items, key=lambda item: CATEGORY_ORDER.index(item["category"]))
