"""Which revision to serve, chosen before statistics are gathered (pure).

The spec's revision serves (or its promoted recalibration) unless a rollback
quarantined it; then the revision already serving, or the last good one.
"""

from __future__ import annotations

from dataclasses import dataclass

from equiguard.contracts.model import ClinicalModel
from equiguard.contracts.status import PriorStatus, RevisionRecord
from equiguard.operator.manifests import Images, Revision, spec_revision
from equiguard.operator.promotion import lineage_head


@dataclass(frozen=True)
class ServingPlan:
    """Which revision to serve, and why the spec's own might not be it."""

    revision: Revision
    lifted_quarantine: str = ""


def plan_serving(
    model: ClinicalModel, prior: PriorStatus, retry_revision: str, images: Images
) -> ServingPlan:
    """Serve the spec's revision (or its promoted recalibration) unless a rollback
    quarantined it.

    A quarantined revision stays out until the spec names another one or the
    retry annotation names it; then the quarantine is lifted. The spec's own
    bento runs on its image, or on the operator's model image when it names none.
    """
    head = lineage_head(model.bento, prior.revisions)
    record = prior.revision(head)
    desired = Revision(head, record.image if record is not None and head != model.bento
                       else spec_revision(model, images).image)  # fmt: skip
    if record is None or not record.quarantined:
        return ServingPlan(desired)
    if retry_revision == head:
        return ServingPlan(desired, lifted_quarantine=head)
    current = prior.revision(prior.serving)
    if current is not None and not current.quarantined:
        return ServingPlan(Revision(current.revision, current.image))
    fallback = last_good(prior.revisions, exclude=head)
    if fallback is not None:
        return ServingPlan(Revision(fallback.revision, fallback.image))
    # Nothing else was ever good: serving the spec beats serving nothing.
    return ServingPlan(desired)


def last_good(revisions: tuple[RevisionRecord, ...], exclude: str) -> RevisionRecord | None:
    """The most recently qualified revision that is not quarantined and not `exclude`."""
    candidates = [
        record
        for record in revisions
        if record.qualified_at is not None and not record.quarantined and record.revision != exclude
    ]
    return max(candidates, key=lambda r: r.qualified_at or r.first_served, default=None)
