"""What `operator_scale` measures of the operator process, and the table it prints.

The operator runs as a child process: its CPU time comes from
/proc/<pid>/stat, its memory from /proc/<pid>/status, and its evaluations and
API calls from its own /metrics (`equiguard_evaluations_total`,
`equiguard_api_requests_total`). A stage's figures are differences between
two snapshots taken around its measured window, so creating the fleet and
letting it settle never count.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's closing parenthesis: utime and stime are fields 12 and 13.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True)
class Snapshot:
    """The operator's counters at one moment."""

    at: float
    cpu: float
    evaluations: float
    api_requests: float

    @classmethod
    def take(cls, pid: int, metrics_url: str, at: float) -> Snapshot:
        with urllib.request.urlopen(metrics_url, timeout=30) as answer:
            text = answer.read().decode()
        totals = {"equiguard_evaluations": 0.0, "equiguard_api_requests": 0.0}
        for family in text_string_to_metric_families(text):
            if family.name in totals:
                totals[family.name] += sum(
                    sample.value for sample in family.samples if sample.name.endswith("_total")
                )
        return cls(
            at,
            cpu_seconds(pid),
            totals["equiguard_evaluations"],
            totals["equiguard_api_requests"],
        )


@dataclass(frozen=True)
class StageFigures:
    """One fleet size's measured window."""

    models: int
    pods: int
    p50: float
    p95: float
    evaluations_per_second: float
    cpu_per_evaluation: float  # seconds
    requests_per_evaluation: float
    rss: float  # MiB, the window's maximum
    rss_per_model: float  # MiB above the idle operator, per model
    load: tuple[float, float, float]  # the machine's load average at the window's end

    @classmethod
    def of(
        cls,
        models: int,
        pods: int,
        latencies: tuple[float, float],
        before: Snapshot,
        after: Snapshot,
        rss: float,
        idle_rss: float,
        load: tuple[float, float, float],
    ) -> StageFigures:
        evaluations = max(after.evaluations - before.evaluations, 1.0)
        return cls(
            models=models,
            pods=pods,
            p50=latencies[0],
            p95=latencies[1],
            evaluations_per_second=evaluations / (after.at - before.at),
            cpu_per_evaluation=(after.cpu - before.cpu) / evaluations,
            requests_per_evaluation=(after.api_requests - before.api_requests) / evaluations,
            rss=rss,
            rss_per_model=(rss - idle_rss) / models,
            load=load,
        )


COLUMNS = (
    ("models", "{:>6d}", "models"),
    ("pods", "{:>6d}", "pods"),
    ("p50 s", "{:>7.3f}", "p50"),
    ("p95 s", "{:>7.3f}", "p95"),
    ("eval/s", "{:>7.2f}", "evaluations_per_second"),
    ("CPU ms/eval", "{:>11.1f}", "cpu_per_evaluation"),
    ("API/eval", "{:>8.2f}", "requests_per_evaluation"),
    ("RSS MiB", "{:>7.0f}", "rss"),
    ("KiB/model", "{:>9.0f}", "rss_per_model"),
)
SCALES = {"cpu_per_evaluation": 1000.0, "rss_per_model": 1024.0}
RATIOS = ("p50", "p95", "cpu_per_evaluation", "requests_per_evaluation", "rss_per_model")


def table(stages: list[StageFigures]) -> str:
    """The stages' figures, and each one's ratio to the first (the smallest fleet)."""
    head = "  ".join(f"{title:>{len(fmt.format(0))}}" for title, fmt, _ in COLUMNS)
    lines = [head + "  load (1, 5, 15 min)"]
    for stage in stages:
        cells = [
            fmt.format(
                getattr(stage, attr) * SCALES[attr] if attr in SCALES else getattr(stage, attr)
            )
            for _, fmt, attr in COLUMNS
        ]
        load = ", ".join(f"{value:.1f}" for value in stage.load)
        lines.append("  ".join(cells) + f"  {load}")
    first = stages[0]
    for stage in stages[1:]:
        parts = []
        for attr in RATIOS:
            base = getattr(first, attr)
            parts.append(f"{attr} x{getattr(stage, attr) / base:.2f}" if base else f"{attr} -")
        lines.append(f"{stage.models} / {first.models} models: " + ", ".join(parts))
    return "\n".join(lines)
