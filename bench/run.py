"""`make bench`: every speed benchmark, one JSON file of all results, one table.

Each benchmark runs as its own process (as a user would run it alone) and
appends its results through `bench/harness.py`. The JSON file also records
the machine: its CPU model, its core count and the load average before and
after each benchmark, since these machines are shared and a figure means
little without the load it was measured under. Goals are judged on the
table; the simulation of the monitoring method (`engine_monitoring.py`, about
an hour) is not a speed benchmark and runs only when named.

    .venv/bin/python bench/run.py [--out out/bench/results.json] [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEED_BENCHMARKS = (
    "engine_update",
    "engine_metrics",
    "sidecar_scrape",
    "sidecar_ingestion",
    "sidecar_latency",
    "sidecar_path_cpu",
    "recalibration_serving",
    "recalibration_in_process",
    "operator_scale",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(name: str, results_file: Path) -> dict[str, object]:
    """Runs one benchmark; its own output goes to the terminal as it comes."""
    print(f"== bench/{name}.py", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    env = os.environ | {"EQUIGUARD_BENCH_RESULTS": str(results_file)}
    status = subprocess.run([sys.executable, str(HERE / f"{name}.py")], env=env).returncode
    return {
        "benchmark": name,
        "exit_status": status,
        "seconds": round(time.monotonic() - started, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def number(value: float) -> str:
    """Large figures in full with separators, small ones to four significant digits."""
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def table(results: list[dict[str, object]]) -> str:
    header = ("benchmark", "measure", "median", "range", "baseline (median)", "ratio", "goal")
    rows = [header]
    for r in results:
        value, baseline = r["value"], r["baseline"]
        assert isinstance(value, dict)
        unit = r["unit"]
        rows.append(
            (
                str(r["benchmark"]),
                str(r["measure"]),
                f"{number(value['median'])} {unit}",
                f"{number(value['low'])} to {number(value['high'])} ({value['rounds']} rounds)",
                f"{r['baseline_name']}: {number(baseline['median'])} {unit}"
                if isinstance(baseline, dict)
                else "",
                f"{r['ratio']:.3g}" if isinstance(r["ratio"], float) else "",
                f"{r['goal']} ({'met' if r['met'] else 'NOT met'})" if r["goal"] else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("names", nargs="*", default=list(SPEED_BENCHMARKS))
    parser.add_argument("--out", type=Path, default=Path("out/bench/results.json"))
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        results_file = Path(scratch) / "results.jsonl"
        results_file.touch()
        for name in args.names:
            runs.append(run(name, results_file))
        results = [json.loads(line) for line in results_file.read_text().splitlines()]
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    report = {
        "machine": machine,
        "runs": runs,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"{machine['cpu']}, {machine['cores']} cores")
    print(table(results))
    failed = [str(r["benchmark"]) for r in runs if r["exit_status"] != 0]
    missed = [f"{r['benchmark']}: {r['measure']}" for r in results if r["met"] is False]
    print(f"\nresults in {args.out}")
    if missed:
        print("goals not met: " + "; ".join(missed))
    if failed:
        print("benchmarks that failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
