"""The equity engine: subgroup statistics, metrics, intervals and SLO verdicts.

Pure functions and small dataclasses over numpy; no I/O and no clock of its
own. The public API and the JSON formats are described in docs/engine.md.
"""

from equiguard.engine.metrics import MetricTable, compute_metrics, metrics_report
from equiguard.engine.monitoring import DEFAULT_PLAN, MonitoringPlan
from equiguard.engine.slo import SloState, SloVerdict, evaluate_slo, evaluate_slos
from equiguard.engine.spec import ModelSpec, Slo, SpecError, parse_model
from equiguard.engine.stats import Statistics, sum_statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_small_cells
from equiguard.engine.verdict import Verdict, worst
from equiguard.engine.window import Window

__all__ = [
    "DEFAULT_PLAN",
    "CellLayout",
    "MetricTable",
    "ModelSpec",
    "MonitoringPlan",
    "Slo",
    "SloState",
    "SloVerdict",
    "SpecError",
    "Statistics",
    "Verdict",
    "Window",
    "compute_metrics",
    "evaluate_slo",
    "evaluate_slos",
    "metrics_report",
    "parse_model",
    "sum_statistics",
    "suppress_small_cells",
    "worst",
]
