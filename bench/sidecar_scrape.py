"""Time to scrape /metrics from a sidecar exporting about 8,000 subgroup series.

The sidecar's model declares one attribute with 1,998 groups, the most a
model may have (2,000 cells with overall and unknown); records put more than
ten predictions of each kind (TP, FP, TN, FN) in every group, so no cell is
suppressed and the four gauges have about 8,000 series (one window: the
model declares no SLO, so the gauges cover the statistics' span). A scrape
is timed end to end over HTTP, right after new records arrived (the scrape
starts a new rendering in the background and answers from the last one) and
a second later.
Baseline, in the same run: prometheus_client rendering one ordinary
Counter with as many labelled children (the per-request-children design
the custom collector replaces), without HTTP.

Goal: a scrape of the largest model's series in <= 40 ms.

    .venv/bin/python bench/sidecar_scrape.py [--groups 1998] [--scrapes 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import Result, Spread, record
from helpers.bento import free_port
from helpers.sidecar import TOKEN, running_sidecar, sidecar_config

PER_KIND = 11  # one more than the largest suppressed count
KINDS = ((0.9, 1), (0.9, 0), (0.1, 0), (0.1, 1))  # (score, label): TP, FP, TN, FN at 0.5


def spec(groups: int) -> dict[str, Any]:
    return {
        "prediction": {"scorePath": "$.risk", "threshold": "0.50"},
        "subgroups": {
            "attributes": [
                {
                    "name": "site",
                    "source": {"header": "X-Site"},
                    "values": [f"site-{g:04d}" for g in range(groups)],
                }
            ]
        },
        "slos": [],
    }


def post(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def scrape(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as response:
        text = response.read().decode()
    elapsed = time.perf_counter() - started
    series = sum(
        1
        for line in text.splitlines()
        if line.startswith(("equiguard_window_true_", "equiguard_window_false_"))
    )
    return elapsed * 1000, series


def baseline_registry(series: int) -> CollectorRegistry:
    """prometheus_client holding one Counter with as many children as the sidecar's series."""
    registry = CollectorRegistry()
    counter = Counter(
        "equiguard_true_positives",
        "baseline",
        ["model", "namespace", "revision", "attribute", "group"],
        registry=registry,
    )
    for s in range(series):
        counter.labels("readmission-risk", "clinical", "v1", "site", f"site-{s:05d}").inc(12)
    return registry


def render(registry: CollectorRegistry) -> float:
    started = time.perf_counter()
    generate_latest(registry)
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--groups", type=int, default=1_998)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="equiguard-bench-") as scratch:
        folder = Path(scratch)
        config = sidecar_config(f"http://127.0.0.1:{free_port()}", folder, spec=spec(args.groups))
        with running_sidecar(config, folder) as sidecar:
            records = [
                {
                    "request_id": f"r-{g}-{k}-{i}",
                    "score": score,
                    "label": label,
                    "site": f"site-{g:04d}",
                }
                for g in range(args.groups)
                for k, (score, label) in enumerate(KINDS)
                for i in range(PER_KIND)
            ]
            for start in range(0, len(records), 10_000):
                post(f"{sidecar.url}/v1/records", {"records": records[start : start + 10_000]})
            # The first scrape renders; later ones are answered at once.
            series = scrape(sidecar.url)[1]
            registry = baseline_registry(series)
            changed, unchanged, base_times = [], [], []
            for n in range(args.scrapes):
                # One more record of a group that stays above the limit: the next
                # scrape finds the statistics changed and starts a new rendering.
                post(
                    f"{sidecar.url}/v1/records",
                    {
                        "records": [
                            {
                                "request_id": f"extra-{n}",
                                "score": 0.9,
                                "label": 1,
                                "site": "site-0000",
                            }
                        ]
                    },
                )
                elapsed, series = scrape(sidecar.url)
                changed.append(elapsed)
                time.sleep(1.0)  # a scrape interval, shortened
                unchanged.append(scrape(sidecar.url)[0])
                base_times.append(render(registry))  # the baseline takes its turn too
            lag_ok = scrape(sidecar.url)[1] == series
    base = statistics.median(base_times)
    print(f"/metrics with {series} subgroup series, median of {args.scrapes} scrapes:")
    print(f"  statistics changed since the last scrape: {statistics.median(changed):7.1f} ms")
    print(f"  statistics unchanged:                     {statistics.median(unchanged):7.1f} ms")
    print(
        f"  baseline, prometheus_client rendering one Counter with {series} children "
        f"in process: {base:7.1f} ms"
    )
    worst = max(statistics.median(changed), statistics.median(unchanged))
    print(
        f"  ratio to baseline: {worst / base:.2f}; goal 40 ms {'met' if worst <= 40 else 'not met'}"
        f"; series complete: {lag_ok}"
    )
    slower = changed if statistics.median(changed) >= statistics.median(unchanged) else unchanged
    record(
        Result(
            benchmark="sidecar_scrape",
            measure=f"/metrics with {series} subgroup series (the slower of changed/unchanged)",
            unit="ms",
            value=Spread.of(slower),
            baseline_name="prometheus_client rendering",
            baseline=Spread.of(base_times),
            goal="<= 40 ms, every series present",
            met=worst <= 40 and lag_ok,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
