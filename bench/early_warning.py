"""Early warning by simulation: lead time, interval coverage and false alarms.

A model scores one attribute's groups A, B, C (50/30/20% of 2 predictions a
minute); its scores are calibrated, outcomes arrive 30 days after the
prediction. Days 0-30 are the reference (the last good revision, all
outcomes in). From day 30 the early warning is checked every minute: the
engine's shift signals (`shift.shares_differ`, `shift.share_departs`: the
same rule as `detect_shifts`, vectorized over minutes) on the epochs of a
7-day window, and, every 4 hours, the estimated tpr gap between groups from
`estimation.estimate_rates`, judged by `early_warning.judge_estimate`
(warning when the interval of the gap lies past 0.10). The labelled SLO
(tpr maxGap 0.10, 60-day window, confidence 0.99, consecutiveBreaches 2)
is evaluated daily by `evaluate_slos` on the outcomes that have arrived.

Scenarios, the change at day 35: none; covariate shift (group C's scores
move up, calibration holds); concept shift (a care programme halves the
outcome rate of group C's flagged patients: a treatment change no score
shows); mix change (C goes from 20%
to 40% of predictions).

Reported per scenario: the share of runs warned and the days from the change
to the warning (median, 90th percentile), the same for the labelled Violated,
and the coverage of the 95% estimate intervals of tpr, fpr and ppv (one
7-day window after the change, every group whose calibration check passed)
for the rates its outcomes showed. No change: false alarms in 30 days, with
a 95% Clopper-Pearson interval (goal: upper end below 1%).

    .venv/bin/python bench/early_warning.py [--null-runs 400] [--runs 25]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from equiguard.engine.early_warning import Watched, judge_estimate
from equiguard.engine.estimation import estimate_rates
from equiguard.engine.monitoring import DEFAULT_PLAN, comparison_alpha
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.shift import (
    detect_shifts,
    distribution_cuts,
    share_departs,
    shares_differ,
    shift_alpha,
)
from equiguard.engine.slo import SloState, evaluate_slos
from equiguard.engine.spec import Attribute, Slo, Subgroups
from equiguard.engine.stats import Statistics, score_bin, threshold_bin
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.window import Window
from scipy.stats import beta as beta_distribution

MINUTE, DAY = 60.0, 86400.0
PER_MINUTE = 2.0
THRESHOLD = 0.3
GROUPS = ("A", "B", "C")
SHARES = (0.5, 0.3, 0.2)
LAYOUT = CellLayout.from_spec(Subgroups((Attribute("group", values=GROUPS),), ()))
REFERENCE_DAYS, CHANGE_DAY, MONITOR_DAYS, DELAY_DAYS = 30, 35, 30, 30
LABELLED_UNTIL = 110  # days simulated for the labelled verdict
WINDOW = 7 * DAY
FALSE_ALARM = 0.01
GAP = 0.10
MIN_SAMPLES = 50
# The estimated gap is read every 4 hours (a confidence sequence holds at any
# cadence; this one keeps the run short).
ESTIMATE_HOURS = 4
SLO = Slo(
    name="tpr-gap",
    metric="tpr",
    attribute="group",
    comparison="maxGap",
    reference=None,
    threshold=GAP,
    window_seconds=60 * DAY,
    min_samples=MIN_SAMPLES,
    confidence=0.99,
    consecutive_breaches=2,
    action="Alert",
)
WATCHED = Watched(SLO.name, SLO.metric, SLO.attribute, SLO.comparison, GAP)


@dataclass(frozen=True)
class Scenario:
    name: str
    shares: tuple[float, float, float] = SHARES
    c_score_a: float = 2.0  # group C's scores are Beta(a, 5)
    # A care programme halves the outcome rate of group C's flagged patients.
    c_concept: bool = False


SCENARIOS = {
    "none": Scenario("no change"),
    "covariate": Scenario("covariate shift in C", c_score_a=4.0),
    "concept": Scenario("concept shift in C", c_concept=True),
    "mix": Scenario("mix change (C 20% to 40%)", shares=(0.4, 0.2, 0.4)),
}


def rows(
    rng: np.random.Generator, start_day: float, days: float, scenario: Scenario
) -> dict[str, np.ndarray]:
    n = rng.poisson(PER_MINUTE * days * 1440)
    times = np.sort(rng.uniform(start_day * DAY, (start_day + days) * DAY, n))
    group = rng.choice(3, n, p=list(scenario.shares))
    score = np.where(group == 2, rng.beta(scenario.c_score_a, 5.0, n), rng.beta(2.0, 5.0, n))
    treated = (group == 2) & scenario.c_concept & (score >= THRESHOLD)
    truth = np.where(treated, score / 2, score)
    return {
        "time": times,
        "cells": LAYOUT.assign({"group": [GROUPS[g] for g in group]}, n),
        "score": score,
        "label": (rng.random(n) < truth).astype(np.int64),
    }


def joined(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def subset(data: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[keep] for key, value in data.items()}


def epochs_fired(
    data: dict[str, np.ndarray], reference: ScoreStatistics, lagged: dict[str, np.ndarray]
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Per epoch: its first minute, and for each of its minutes whether a score, flag or
    mix signal fired, and whether a label coverage signal fired."""
    start = REFERENCE_DAYS * DAY
    minutes = MONITOR_DAYS * 1440
    minute = ((data["time"] - start) // MINUTE).astype(np.int64)
    fine = score_bin(data["score"], THRESHOLD, reference.score_bins)
    cells = len(LAYOUT.cells)
    alpha = shift_alpha(FALSE_ALARM, cells, WINDOW, DEFAULT_PLAN)
    stride = int(WINDOW / MINUTE) // DEFAULT_PLAN.epochs_per_window
    split = threshold_bin(THRESHOLD, reference.score_bins)
    ref_n = reference.counts.sum(axis=1)
    epochs = []
    # Per cell, per minute: counts in the segments between the cuts tested.
    per_cell = []
    for row in range(cells):
        in_cell = (data["cells"] == row).any(axis=1)
        cuts = np.unique(np.append(distribution_cuts(reference, row), split))
        segment = np.searchsorted(cuts, fine[in_cell])  # segment j holds bins (cuts[j-1], cuts[j]]
        counts = np.zeros((minutes, len(cuts) + 1), np.int64)
        np.add.at(counts, (minute[in_cell], segment), 1)
        per_cell.append((cuts, counts))
    # Matured predictions of a month earlier carry the label coverage: each outcome is in
    # unless lost; this stream is stationary in every scenario here.
    lag_minute = ((lagged["time"] - (start - DELAY_DAYS * DAY)) // MINUTE).astype(np.int64)
    lag_counts = np.zeros((minutes, cells, 2), np.int64)
    for row in range(cells):
        in_cell = (lagged["cells"] == row).any(axis=1)
        np.add.at(lag_counts, (lag_minute[in_cell], row, lagged["label_in"][in_cell]), 1)
    for epoch_start in range(0, minutes, stride):
        end = min(epoch_start + 2 * stride, minutes)
        fired = np.zeros(end - epoch_start, bool)
        totals = {}
        for row, (cuts, counts) in enumerate(per_cell):
            cumulative = np.cumsum(counts[epoch_start:end], axis=0)
            n = cumulative.sum(axis=1)
            totals[row] = n
            enough = (n >= MIN_SAMPLES) & (ref_n[row] >= MIN_SAMPLES)
            below = np.cumsum(cumulative, axis=1)[:, :-1]  # predictions at or below each cut
            ref_below = np.array([reference.counts[row, : c + 1].sum() for c in cuts])
            shifted = shares_differ(
                below, n[:, None], ref_below[None, :], ref_n[row], alpha, DEFAULT_PLAN
            )[0]
            fired |= enough & shifted.any(axis=1)
        overall, ref_overall = totals[0], ref_n[0]
        lag = np.cumsum(lag_counts[epoch_start:end], axis=0)
        for row in range(1, cells):
            mix = shares_differ(totals[row], overall, ref_n[row], ref_overall, alpha, DEFAULT_PLAN)[
                0
            ]
            fired |= (overall >= MIN_SAMPLES) & mix
        lost = np.zeros_like(fired)
        for row in range(1, cells):
            labelled, predicted = lag[:, row, 1], lag[:, row].sum(axis=1)
            all_labelled, all_predicted = lag[:, 0, 1], lag[:, 0].sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                expected = predicted / all_predicted
            coverage = share_departs(labelled, all_labelled, expected, alpha, DEFAULT_PLAN)[0]
            lost |= (all_labelled >= MIN_SAMPLES) & (predicted >= MIN_SAMPLES) & coverage
        epochs.append((epoch_start, fired, lost))
    return epochs


def shift_alarm_minute(
    data: dict[str, np.ndarray], reference: ScoreStatistics, lagged: dict[str, np.ndarray]
) -> float:
    """The first minute after monitoring starts at which a shift signal fires (inf if none)."""
    first = np.inf
    for epoch_start, fired, lost in epochs_fired(data, reference, lagged):
        hits = np.flatnonzero(fired | lost)
        if hits.size:
            first = min(first, float(epoch_start + hits[0]))
    return first


def spot_check(rng: np.random.Generator, checks: int = 40) -> int:
    """Minutes at which `detect_shifts` on the epoch's ScoreStatistics agreed with the
    vectorized rule above (score, flag and mix signals), on covariate-shift runs."""
    agreed = 0
    alpha = shift_alpha(FALSE_ALARM, len(LAYOUT.cells), WINDOW, DEFAULT_PLAN)
    for _ in range(checks // 10):
        data = rows(rng, 0, REFERENCE_DAYS, SCENARIOS["none"])
        monitored = rows(rng, REFERENCE_DAYS, MONITOR_DAYS, SCENARIOS["covariate"])
        reference = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
        reference.update(data["cells"], data["score"])
        lagged = rows(rng, REFERENCE_DAYS - DELAY_DAYS, MONITOR_DAYS, SCENARIOS["none"])
        lagged["label_in"] = np.ones(len(lagged["score"]), np.int64)
        epoch_start, fired, _ = epochs_fired(monitored, reference, lagged)[0]
        minute = ((monitored["time"] - REFERENCE_DAYS * DAY) // MINUTE).astype(np.int64)
        for at in rng.integers(0, 360, 10):  # the first hours, where the signals change
            upto = (minute >= epoch_start) & (minute <= at)
            current = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
            current.update(monitored["cells"][upto], monitored["score"][upto])
            signals = detect_shifts(current, reference, alpha, DEFAULT_PLAN, MIN_SAMPLES)
            engine = any(s.shifted for s in signals if s.signal != "labelCoverage")
            agreed += engine == bool(fired[at - epoch_start])
    return agreed


def estimate_alarm_hour(data: dict[str, np.ndarray], reference: Statistics) -> float:
    """The first hour at which the estimated tpr gap is confidently past GAP (inf if none),
    judged by the engine's `early_warning.judge_estimate` at the budget of the gap alone."""
    start = REFERENCE_DAYS * DAY
    pairs = len(GROUPS) * (len(GROUPS) - 1) // 2
    alpha = comparison_alpha(FALSE_ALARM, pairs, WINDOW, DEFAULT_PLAN)
    stride = WINDOW / DEFAULT_PLAN.epochs_per_window
    hour_of = ((data["time"] - start) // 3600).astype(np.int64)
    for epoch_start in np.arange(0, MONITOR_DAYS * DAY, stride):
        stats = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
        first_hour = int(epoch_start // 3600)
        last_hour = int(min(epoch_start + WINDOW, MONITOR_DAYS * DAY) // 3600)
        for hour in range(first_hour, last_hour, ESTIMATE_HOURS):
            rows_now = (hour_of >= hour) & (hour_of < hour + ESTIMATE_HOURS)
            stats.update(data["cells"][rows_now], data["score"][rows_now])
            judged = judge_estimate(stats, reference, WATCHED, alpha, DEFAULT_PLAN, MIN_SAMPLES)
            if judged.breached:
                return float(hour + ESTIMATE_HOURS)
    return np.inf


def labelled_violated_day(data: dict[str, np.ndarray]) -> float:
    """The first day the labelled SLO is Violated, on the outcomes arrived by then (inf if none)."""
    window = Window(LAYOUT.cells, THRESHOLD, bucket_seconds=DAY, span_seconds=SLO.window_seconds)
    arrival_day = (data["time"] // DAY).astype(np.int64) + DELAY_DAYS
    state = {SLO.name: SloState()}
    for day in range(REFERENCE_DAYS + DELAY_DAYS, LABELLED_UNTIL):
        arrived = arrival_day == day
        window.update(
            data["time"][arrived],
            data["cells"][arrived],
            data["score"][arrived],
            data["label"][arrived],
        )
        if day < CHANGE_DAY:
            continue
        now = (day + 1) * DAY - 1
        verdicts, state = evaluate_slos(
            [SLO], lambda span, now=now: window.total(now, span), state, now
        )
        if verdicts[SLO.name].status == "Violated":
            return float(day)
    return np.inf


def coverage(data: dict[str, np.ndarray], reference: Statistics) -> tuple[int, int, int]:
    """How many 95% intervals (tpr, fpr, ppv of available groups) held the realised rate,
    of how many, and how many groups with predictions failed the calibration check."""
    week = subset(
        data, (data["time"] >= CHANGE_DAY * DAY) & (data["time"] < (CHANGE_DAY + 7) * DAY)
    )
    stats = ScoreStatistics.empty(LAYOUT.cells, THRESHOLD)
    stats.update(week["cells"], week["score"])
    held = total = failed = 0
    for estimate in estimate_rates(stats, reference):
        failed += estimate.n > 0 and not estimate.available
        if not estimate.available:
            continue
        mine = (week["cells"] == LAYOUT.cell_index(estimate.dimension, estimate.group)).any(axis=1)
        flagged, positive = week["score"][mine] >= THRESHOLD, week["label"][mine] == 1
        realised = {
            "tpr": (flagged & positive).sum() / positive.sum(),
            "fpr": (flagged & ~positive).sum() / (~positive).sum(),
            "ppv": (flagged & positive).sum() / flagged.sum(),
        }
        for metric, value in realised.items():
            rate = estimate.rates[metric]
            total += 1
            held += rate.lower <= value <= rate.upper
    return held, total, failed


def run(rng: np.random.Generator, scenario: Scenario, labelled: bool) -> dict[str, float]:
    before = rows(rng, 0, CHANGE_DAY, SCENARIOS["none"])
    after = rows(rng, CHANGE_DAY, LABELLED_UNTIL - CHANGE_DAY, scenario)
    data = joined(before, after)
    ref_rows = data["time"] < REFERENCE_DAYS * DAY
    reference = Statistics.empty(LAYOUT.cells, THRESHOLD)
    reference.update(data["cells"][ref_rows], data["score"][ref_rows], data["label"][ref_rows])
    monitored = subset(
        data,
        (data["time"] >= REFERENCE_DAYS * DAY)
        & (data["time"] < (REFERENCE_DAYS + MONITOR_DAYS) * DAY),
    )
    lagged = rows(rng, REFERENCE_DAYS - DELAY_DAYS, MONITOR_DAYS, SCENARIOS["none"])
    lagged["label_in"] = (rng.random(len(lagged["score"])) < 0.98).astype(np.int64)
    shift_minute = shift_alarm_minute(monitored, ScoreStatistics.of_labelled(reference), lagged)
    estimate_hour = estimate_alarm_hour(monitored, reference)
    warned_day = min(shift_minute / 1440, estimate_hour / 24) + REFERENCE_DAYS
    held, total, failed = coverage(data, reference)
    return {
        "warned": warned_day,
        "shift": shift_minute / 1440 + REFERENCE_DAYS,
        "estimate": estimate_hour / 24 + REFERENCE_DAYS,
        "violated": labelled_violated_day(data) if labelled else np.inf,
        "held": held,
        "intervals": total,
        "failed": failed,
    }


def clopper_pearson(events: int, trials: int) -> tuple[float, float]:
    low = 0.0 if events == 0 else float(beta_distribution.ppf(0.025, events, trials - events + 1))
    high = (
        1.0
        if events == trials
        else float(beta_distribution.ppf(0.975, events + 1, trials - events))
    )
    return low, high


def lead(days: list[float]) -> str:
    after = [d - CHANGE_DAY for d in days if np.isfinite(d)]
    if not after:
        return "never"
    return f"{len(after)}/{len(days)}: {np.median(after):.1f} ({np.quantile(after, 0.9):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--null-runs", type=int, default=400)
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(16)
    checks = 40
    agreed = spot_check(rng, checks)
    print(f"detect_shifts agreed with the simulated rule at {agreed}/{checks} minutes")
    print("false alarms with no change, 30 days of per-minute shift checks and 4-hourly estimates")
    early = [run(rng, SCENARIOS["none"], labelled=False)["warned"] for _ in range(args.null_runs)]
    alarms = sum(np.isfinite(d) for d in early)
    low, high = clopper_pearson(alarms, args.null_runs)
    print(
        f"runs {args.null_runs}, alarms {alarms}, rate {alarms / args.null_runs:.2%}, "
        f"95% interval {low:.2%} to {high:.2%}"
    )
    print("\ndays from the change (day 35) to the first warning and to the labelled Violated:")
    print(
        "runs with one: median (90th percentile); coverage of 95% intervals (tpr, fpr, ppv);"
        " groups whose reference calibration check failed"
    )
    print(
        f"{'scenario':<28} {'early warning':>20} {'shift signal':>20} {'estimated gap':>20} "
        f"{'labelled Violated':>20} {'coverage':>16} {'check failed':>13}"
    )
    for scenario in SCENARIOS.values():
        results = [run(rng, scenario, labelled=True) for _ in range(args.runs)]
        held = sum(r["held"] for r in results)
        total = sum(r["intervals"] for r in results)
        failed = sum(r["failed"] for r in results)
        groups = 4 * len(results)  # overall, A, B, C
        print(
            f"{scenario.name:<28} {lead([r['warned'] for r in results]):>20} "
            f"{lead([r['shift'] for r in results]):>20} "
            f"{lead([r['estimate'] for r in results]):>20} "
            f"{lead([r['violated'] for r in results]):>20} {f'{held / total:.1%} of {total}':>16} "
            f"{f'{failed}/{groups}':>13}",
            flush=True,
        )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
