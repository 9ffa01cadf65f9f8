"""Continuous monitoring by simulation: false alarms and the cost of detection.

An SLO "tpr may differ by at most 0 between two groups" (any gap breaches),
window 7d, confidence 0.99, minSamples 50, consecutiveBreaches 2, evaluated
every minute for 30 days. Labelled positives arrive at each group as a
Poisson stream; each is a true positive with the group's TPR. The decision
rule is the engine's (Newcombe intervals at the level `critical_z` gives,
breach when the bound is past the threshold); a spot check replays some
minutes through `evaluate_slo` itself.

Reported, each beside its baseline:
- false-alarm rate over 30 days with no true gap (goal <= 1%), beside the
  same evaluation at a plain 95% level;
- positives per group a 7-day window must hold for a true 0.10 gap
  (0.75 vs 0.65) to be detected within 30 days with 90% probability, beside
  the fixed-sample number of one test (goal <= 1.5x);
- positives per group seen until detection (90th percentile) when traffic is
  high, i.e. the sequential cost while the first window fills.

    .venv/bin/python bench/engine_monitoring.py [--null-runs 1000] [--runs 200]
"""

from __future__ import annotations

import argparse
import time
from statistics import NormalDist

import numpy as np
from equiguard.engine.intervals import newcombe_difference_z
from equiguard.engine.monitoring import DEFAULT_PLAN, critical_z
from equiguard.engine.slo import SloState, evaluate_slo
from equiguard.engine.spec import Attribute, Slo, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout

MINUTE = 60.0
WINDOW = 7 * 1440  # minutes
HORIZON = 30 * 1440
SLO = Slo(
    name="tpr-gap",
    metric="tpr",
    attribute="group",
    comparison="maxGap",
    reference=None,
    threshold=0.0,
    window_seconds=WINDOW * MINUTE,
    min_samples=50,
    confidence=0.99,
    consecutive_breaches=2,
    action="Rollback",
)
NULL_TPR, ALTERNATIVE = 0.70, (0.75, 0.65)
LAYOUT = CellLayout.from_spec(Subgroups((Attribute("group", values=("a", "b")),), ()))


def windowed(per_minute: np.ndarray) -> np.ndarray:
    total = np.cumsum(per_minute, axis=1)
    total[:, WINDOW:] -= total[:, :-WINDOW].copy()
    return total


def simulate(
    runs: int, per_window: float, tprs: tuple[float, float], z: float, seed: int, chunk: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Per run: whether a breach was declared, and positives per group seen until then."""
    rng = np.random.default_rng(seed)
    rate = per_window / WINDOW
    declared, seen = [], []
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        arrivals = [rng.poisson(rate, (r, HORIZON)) for _ in tprs]
        hits = [rng.binomial(a, p) for a, p in zip(arrivals, tprs, strict=True)]
        n1, n2 = windowed(arrivals[0]), windowed(arrivals[1])
        x1, x2 = windowed(hits[0]), windowed(hits[1])
        low, high = newcombe_difference_z(x1, n1, x2, n2, z)
        breach = (
            (n1 >= SLO.min_samples)
            & (n2 >= SLO.min_samples)
            & ((low > SLO.threshold) | (high < -SLO.threshold))
        )
        run = breach.copy()
        for lag in range(1, SLO.consecutive_breaches):
            run[:, lag:] &= breach[:, :-lag]
            run[:, :lag] = False
        hit = run.any(axis=1)
        first = run.argmax(axis=1)
        cumulative = np.cumsum(arrivals[0], axis=1)[np.arange(r), first]
        declared.append(hit)
        seen.append(np.where(hit, cumulative, np.inf))
    return np.concatenate(declared), np.concatenate(seen)


def spot_check(z: float, seed: int = 1) -> int:
    """Replay minutes through evaluate_slo; returns how many agreed with the simulation."""
    rng = np.random.default_rng(seed)
    agreed = 0
    for _ in range(20):
        n = rng.integers(40, 400, 2)
        x = rng.binomial(n, (0.75, 0.62))
        low, high = newcombe_difference_z(x[0], n[0], x[1], n[1], z)
        simulated = bool(min(n) >= SLO.min_samples and (low > 0 or high < 0))
        groups = ["a"] * n[0] + ["b"] * n[1]
        scores = [0.9] * x[0] + [0.1] * (n[0] - x[0]) + [0.9] * x[1] + [0.1] * (n[1] - x[1])
        stats = Statistics.empty(LAYOUT.cells, 0.5)
        stats.update(
            LAYOUT.assign({"group": groups}, len(groups)),
            np.array(scores),
            np.ones(len(groups), dtype=np.int64),
        )
        verdict, _ = evaluate_slo(SLO, stats, SloState(), 0.0)
        agreed += simulated == (verdict.reason in ("BreachPending", "ThresholdExceeded"))
    return agreed


def crossing(grid: tuple[int, ...], power: list[float], target: float) -> float:
    """The grid value where power first reaches target, interpolated linearly."""
    for k, (size, achieved) in enumerate(zip(grid, power, strict=True)):
        if achieved >= target:
            if k == 0:
                return float(size)
            previous, before = grid[k - 1], power[k - 1]
            return previous + (size - previous) * (target - before) / (achieved - before)
    return float("nan")


def fixed_sample(alpha_two_sided: float, power: float = 0.9) -> float:
    z = NormalDist().inv_cdf(1 - alpha_two_sided / 2) + NormalDist().inv_cdf(power)
    (p1, p2) = ALTERNATIVE
    return z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / (p1 - p2) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--null-runs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    z = critical_z(1 - SLO.confidence, 2, SLO.window_seconds, DEFAULT_PLAN)
    level = 1 - 2 * (1 - NormalDist().cdf(z))
    print(
        f"per-evaluation interval level {level:.6f} (z = {z:.3f}); "
        f"evaluate_slo agreed with the simulated rule on {spot_check(z)}/20 replayed minutes"
    )

    print("\nfalse alarms over 30 days of per-minute evaluation, no true gap (tpr 0.70 in both)")
    print(f"{'positives per group per 7d':<30}{'monitoring (0.99 horizon)':>28}", end="")
    print(f"{'plain 95% every minute':>26}")
    naive_z = NormalDist().inv_cdf(0.975)
    for per_window in (150, 1000, 5000):
        alarms, _ = simulate(args.null_runs, per_window, (NULL_TPR, NULL_TPR), z, seed=per_window)
        naive, _ = simulate(
            min(args.runs, args.null_runs),
            per_window,
            (NULL_TPR, NULL_TPR),
            naive_z,
            seed=per_window + 1,
        )
        margin = 1.96 * np.sqrt(alarms.mean() * (1 - alarms.mean()) / len(alarms))
        print(f"{per_window:<30}{f'{alarms.mean():.2%} +- {margin:.2%}':>28}{naive.mean():>26.1%}")

    print("\ndetecting a true 0.10 tpr gap (0.75 vs 0.65)")
    grid = (200, 300, 400, 500, 650)
    power = []
    for per_window in grid:
        detected, _ = simulate(args.runs, per_window, ALTERNATIVE, z, seed=10 + per_window)
        power.append(detected.mean())
        print(f"  {per_window} positives per group per 7d: ", end="")
        print(f"detected within 30 days in {detected.mean():.1%}")
    needed = crossing(grid, power, 0.9)
    _, seen = simulate(args.runs, 5000, ALTERNATIVE, z, seed=99)
    sequential = float(np.quantile(seen, 0.9))
    fixed95, fixed99 = fixed_sample(0.05), fixed_sample(1 - SLO.confidence)
    print(f"\n{'positives per group for 90% detection':<56}{'n':>8}", end="")
    print(f"{'vs 95% test':>13}{'vs 99% test':>13}")
    rows = (
        ("fixed-sample test, two-sided 95%", fixed95),
        ("fixed-sample test, two-sided 99% (same error)", fixed99),
        ("monitoring: content of a 7d window (interpolated)", needed),
        ("monitoring: seen until detection, high traffic (q90)", sequential),
    )
    for name, n in rows:
        print(f"{name:<56}{n:>8.0f}{n / fixed95:>12.2f}x{n / fixed99:>12.2f}x")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
