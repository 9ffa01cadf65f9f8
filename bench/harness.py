"""What every benchmark shares: interleaved rounds and one way to report a result.

These machines are shared and noisy, so a benchmark never times the project
and its baseline one after the other: `interleave` runs them in turns
(A B A B ...), so drift in the machine's load hits both alike, and the
headline is the ratio of their medians. `record` prints nothing; it appends
the result to the file `bench/run.py` names in EQUIGUARD_BENCH_RESULTS, from
which `make bench` writes one JSON file and prints one table. Run alone, a
benchmark only prints its own lines.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

RESULTS_ENV = "EQUIGUARD_BENCH_RESULTS"


@dataclass(frozen=True)
class Spread:
    """The median of some rounds and the range they took."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one round")
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Result:
    """One measured figure, its baseline in the same run, and its goal."""

    benchmark: str
    measure: str
    unit: str
    value: Spread
    baseline_name: str | None = None
    baseline: Spread | None = None
    goal: str = ""
    met: bool | None = None  # None where the figure has no goal

    @property
    def ratio(self) -> float | None:
        """The project's median over the baseline's, the figure noise disturbs least."""
        if self.baseline is None or self.baseline.median == 0:
            return None
        return self.value.median / self.baseline.median


def interleave(actions: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each action's measurements over `rounds` turns taken in order, A B A B ..."""
    measured: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(rounds):
        for name, action in actions.items():
            measured[name].append(action())
    return measured


def record(result: Result) -> None:
    """Appends a result to this run's results file, when `make bench` asked for one."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    line = asdict(result) | {"ratio": result.ratio}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
