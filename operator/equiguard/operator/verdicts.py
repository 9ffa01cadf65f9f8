"""SLO verdicts of the serving revision from the summed statistics of its pods.

Pure: the statistics are already gathered, the engine state and the clock are
passed in. Everything written from here into status or a decision record has
gone through the engine's small-cell suppression.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from equiguard.contracts.stats_exchange import window_text
from equiguard.contracts.status import read_number
from equiguard.engine.metrics import DENOMINATOR, compute_metrics, metrics_report
from equiguard.engine.monitoring import DEFAULT_PLAN
from equiguard.engine.slo import SloState, SloVerdict, evaluate_slos, slo_spans
from equiguard.engine.spec import ModelSpec, Slo
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_own_spans, suppress_small_cells
from equiguard.engine.verdict import Verdict
from equiguard.operator.draft import SloResult


def spans(spec: ModelSpec, now: float) -> tuple[float, ...]:
    """The distinct spans to read, one /v1/stats request per pod for each: the SLO
    windows (for the published metrics) and the epochs the verdicts read at `now`."""
    wanted = {slo.window_seconds for slo in spec.slos}
    for slo in spec.slos:
        wanted.update(slo_spans(slo, now, DEFAULT_PLAN))
    return tuple(sorted(wanted))


def unavailable(spec: ModelSpec, reason: str, message: str) -> tuple[SloResult, ...]:
    """Every SLO Inconclusive because there are no statistics to judge; state is kept."""
    return tuple(
        SloResult(name=slo.name, verdict=Verdict.INCONCLUSIVE, reason=reason, message=message)
        for slo in spec.slos
    )


def _number(value: object, decimals: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    if math.isinf(value) or math.isnan(value):
        return ""
    return f"{value:.{decimals}f}"


def _groups(report: Mapping[str, Any], slo: Slo) -> list[dict[str, Any]]:
    """Each declared group's metric, interval and denominator, as suppressed for export."""
    rows = []
    denominator = DENOMINATOR[slo.metric]
    for group, block in report.get(slo.attribute, {}).items():
        suppressed = bool(block.get("suppressed"))
        interval = (block.get("intervals") or {}).get(slo.metric) or [None, None]
        row: dict[str, Any] = {"group": group, "suppressed": suppressed}
        for key, value in (
            ("estimate", block.get(slo.metric)),
            ("lower", interval[0]),
            ("upper", interval[1]),
        ):
            text = _number(value)
            if text:
                row[key] = text
        count = block.get(denominator)
        if isinstance(count, int) and not isinstance(count, bool):
            row["n"] = count
        rows.append(row)
    return rows


def _evidence(
    slo: Slo, entry: Mapping[str, Any], report: Mapping[str, Any], pods: int, breaches: int
) -> dict[str, Any]:
    evidence = entry.get("evidence", {})
    interval = evidence.get("interval") or [None, None]
    group, reference = evidence.get("group"), evidence.get("reference")
    worst = f"{group} vs {reference}" if group and reference else (group or "")
    out: dict[str, Any] = {
        "metric": slo.metric,
        "attribute": slo.attribute,
        "comparison": slo.comparison,
        "threshold": f"{slo.threshold:g}",
        # The corrected level is close to 1: six decimals keep it from reading as "1".
        "confidence": _number(evidence.get("confidence"), decimals=6),
        "window": window_text(slo.window_seconds),
        "consecutiveBreaches": slo.consecutive_breaches,
        "breaches": breaches,
        "pods": pods,
        "groups": _groups(report, slo),
    }
    if slo.reference:
        out["reference"] = slo.reference
    if worst:
        out["worstGroup"] = worst
    # The largest gap by point estimate, beside the decisive (most confident) comparison.
    largest = evidence.get("largestGap") or {}
    estimate = _number(largest.get("estimate"))
    if estimate:
        pair = [str(largest[k]) for k in ("group", "reference") if largest.get(k)]
        out["largestGap"] = {"groups": " vs ".join(pair), "estimate": estimate}
    for key, value in (
        ("estimate", evidence.get("estimate")),
        ("lower", interval[0]),
        ("upper", interval[1]),
    ):
        text = _number(value)
        if text:
            out[key] = text
    return {key: value for key, value in out.items() if value != ""}


def slo_results(
    spec: ModelSpec,
    statistics: Mapping[float, Statistics],
    states: Mapping[str, Mapping[str, Any]],
    now: float,
    pods: int,
) -> tuple[SloResult, ...]:
    """Verdicts on the summed statistics (one per SLO window), carrying each SLO's state."""
    layout = CellLayout.from_spec(spec.subgroups)
    prior = {name: SloState.from_dict(state) for name, state in states.items() if state}
    verdicts, new_states = evaluate_slos(spec.slos, lambda span: statistics[span], prior, now)
    # Status shows each SLO window's groups: the windows are suppressed together,
    # so no difference of two of them discloses what each hides.
    windows = sorted({slo.window_seconds for slo in spec.slos})
    tables = [metrics_report(compute_metrics(statistics[w])) for w in windows]
    suppress_own_spans(tables, layout)
    reports: dict[float, Mapping[str, Any]] = dict(zip(windows, tables, strict=True))
    exported = suppress_small_cells(
        {"slos": {name: verdict.to_dict() for name, verdict in verdicts.items()}}, layout
    )["slos"]
    assert isinstance(exported, dict)
    return tuple(
        _result(
            slo,
            verdicts[slo.name],
            exported[slo.name],
            reports[slo.window_seconds],
            new_states[slo.name],
            pods,
        )
        for slo in spec.slos
    )


def _result(
    slo: Slo,
    verdict: SloVerdict,
    entry: Mapping[str, Any],
    report: Mapping[str, Any],
    state: SloState,
    pods: int,
) -> SloResult:
    evidence = _evidence(slo, entry, report, pods, state.consecutive_breaches)
    return SloResult(
        name=slo.name,
        verdict=verdict.status,
        reason=verdict.reason,
        message=str(entry.get("message", verdict.message)),
        breaches=state.consecutive_breaches,
        worst_group=str(evidence.get("worstGroup", "")),
        estimate=read_number(evidence.get("estimate")),
        lower=read_number(evidence.get("lower")),
        upper=read_number(evidence.get("upper")),
        evidence=evidence,
        state=state.to_dict(),
        outcomes_needed=_optional_int(entry.get("evidence", {}).get("outcomesNeeded")),
    )


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
