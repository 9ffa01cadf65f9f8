"""Recalibration within a ClinicalModel's change-control envelope.

`equiguard recalibrate` reads the joined outcomes of a window from the
prediction store, fits a per-group recalibration of an allowed method on the
older part, judges it against the serving revision on the newer part with the
equity engine, and publishes a calibrated bento only when every acceptance
criterion holds. docs/recalibration.md describes the method, the impact
assessment and the contract with the operator.
"""
