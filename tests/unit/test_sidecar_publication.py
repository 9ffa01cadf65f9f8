"""The publication: which windows leave the pod without the token, and a verdict's
evidence hiding what those windows hide (checked by the solver attack)."""

from __future__ import annotations

import numpy as np
import pytest
from equiguard.engine.metrics import compute_metrics, metrics_report
from equiguard.engine.slo import SloState, evaluate_slo
from equiguard.engine.spec import Attribute, Slo, Subgroups
from equiguard.engine.stats import Statistics
from equiguard.engine.subgroups import CellLayout
from equiguard.engine.suppression import suppress_small_cells, suppress_verdicts
from equiguard.sidecar.publication import Publisher, declared_windows, publish, window_label
from helpers.attack import attack, combined, from_evidence

DAY = 86400.0
LAYOUT = CellLayout.from_spec(Subgroups((Attribute("race", ("White", "Black")),), ()))


def slo(name: str, window: float) -> Slo:
    return Slo(name, "tpr", "race", "maxGap", None, 0.1, window, 11, 0.95, 1, "Alert")


@pytest.mark.parametrize(
    ("windows", "span", "expected"),
    [
        ((7 * DAY, DAY, 7 * DAY), 30 * DAY, (DAY, 7 * DAY)),  # once each, shortest first
        ((DAY, 60 * DAY), 30 * DAY, (DAY,)),  # a window the statistics cannot hold is not one
        ((60 * DAY,), 30 * DAY, (30 * DAY,)),  # none fits: the whole span
    ],
)
def test_only_the_slo_windows_the_statistics_hold_are_published(
    windows: tuple[float, ...], span: float, expected: tuple[float, ...]
) -> None:
    slos = [slo(f"s{i}", w) for i, w in enumerate(windows)]
    assert declared_windows(slos, span) == expected


@pytest.mark.parametrize(
    ("seconds", "label"), [(7 * DAY, "7d"), (36 * 3600.0, "36h"), (5400.0, "90m"), (45.0, "45s")]
)
def test_a_window_is_labelled_as_the_spec_writes_durations(seconds: float, label: str) -> None:
    assert window_label(seconds) == label


def statistics(rows: list[tuple[str, int, float]]) -> Statistics:
    stats = Statistics.empty(LAYOUT.cells, 0.5)
    races = np.array([r for r, _, _ in rows], dtype=object)
    stats.update(
        LAYOUT.assign({"race": races}, len(rows)),
        np.array([s for _, _, s in rows]),
        np.array([label for _, label, _ in rows], dtype=np.int64),
    )
    return stats


# Today Black has 15 positives (10 detected); two days earlier 5 more (3 detected).
TODAY = (
    [("White", i % 2, 0.2 + 0.6 * (i % 3 == 0)) for i in range(300)]
    + [("Black", 1, 0.9)] * 10
    + [("Black", 1, 0.1)] * 5
    + [("Black", 0, 0.1)] * 30
)
EARLIER = [("White", i % 2, 0.2 + 0.6 * (i % 5 == 0)) for i in range(200)] + (
    [("Black", 1, 0.9)] * 3 + [("Black", 1, 0.1)] * 2 + [("Black", 0, 0.1)] * 20
)


def test_verdict_evidence_hides_what_the_published_windows_hide() -> None:
    windows = (DAY, 7 * DAY)
    totals = [statistics(TODAY), statistics(TODAY + EARLIER)]
    truth = [metrics_report(compute_metrics(t)) for t in totals]
    _, publication = publish(totals, windows, LAYOUT)
    slos = {}
    for name, window, stats in zip(("daily", "weekly"), windows, totals, strict=True):
        verdict, _ = evaluate_slo(slo(name, window), stats, SloState(), 0.0, plan=None)
        slos[name] = verdict.to_dict()
    joint = suppress_verdicts(slos, publication.hidden)
    alone = suppress_small_cells({"slos": slos}, LAYOUT)["slos"]

    def read(evidence: dict[str, dict[str, object]]) -> list[dict[str, object]]:
        return [
            combined(table, from_evidence({name: evidence[name]}))
            for name, table in zip(("daily", "weekly"), publication.metrics, strict=True)
        ]

    assert truth[1]["race"]["Black"]["positives"] - truth[0]["race"]["Black"]["positives"] == 5
    assert attack(read(joint), {}, truth) == []
    # Evidence suppressed on its own shows Black's tpr beside tables that hide it.
    assert attack(read(alone), {}, truth)
    assert any(entry["evidence"]["suppressed"] for entry in joint.values())


class CountingStatistics:
    """Live statistics of one revision, v1, that count how often a window is summed."""

    layout = LAYOUT
    bucket_seconds = 300.0

    def __init__(self) -> None:
        self.version = 1
        self.windows = {"v1": None}
        self.summed = 0

    def total(self, revision: str, now: float, span: float) -> Statistics:
        self.summed += 1
        return statistics(TODAY if revision == "v1" else [])


def test_a_release_is_made_once_per_bucket_and_kept_only_for_real_revisions() -> None:
    live = CountingStatistics()
    publisher = Publisher(live, (DAY,))  # type: ignore[arg-type]
    first = publisher.at("v1", 1000.0)
    assert publisher.at("v1", 1100.0) is first  # the same bucket, the same release
    live.version += 1
    assert publisher.at("v1", 1150.0) is first  # new outcomes wait for the next bucket
    second = publisher.at("v1", 1200.0)
    assert second is not first  # the window moved on by a bucket
    assert second.of(DAY) == first.of(DAY)  # the same counts, made again
    assert live.summed == 2
    for i in range(3):  # names nobody serves are answered, never remembered
        publisher.at(f"guess-{i}", 1250.0)
    assert set(publisher._releases) == {"v1"}
