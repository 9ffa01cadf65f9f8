"""The vocabulary between the parts: one typed definition of each structure
that crosses a boundary, with its reader and its writer.

The sidecar, the operator, the recalibration Job and the report import these
modules, never one another's internals; the contracts build on the engine
only. docs/architecture.md draws who writes and who reads each one.
"""
