"""Governance artefacts built from what the operator and the Jobs recorded: the
change record of each recalibration, in the structure of a predetermined
change control plan (docs/governance.md)."""
