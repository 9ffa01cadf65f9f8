"""GET /v1/scores: every prediction's score and label coverage, as the operator reads them.

The answer must equal `ScoreStatistics` computed directly over the same
predictions, count an outcome in the cell and bucket of its prediction, be
guarded by the bearer token exactly as /v1/stats is, and survive a restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from equiguard.contracts import scores_exchange
from equiguard.engine.scores import ScoreStatistics
from equiguard.engine.subgroups import CellLayout
from test_sidecar_app import AUTH, TOKEN, Harness, config, harness, run
from test_sidecar_app import token as token  # the autouse fixture: the token

RACES = ["White", "Black", "White", "White", "Black", None]  # the last one's is unknown
AGES = [30, 70, 45, 80, 20, 50]
RISKS = [0.05, 0.31, 0.30, 0.62, 0.99, 0.0]


async def scores(h: Harness, query: str = "", expected: int | None = None) -> ScoreStatistics:
    """The answer, once `expected` predictions are committed (predictions commit in batches)."""
    for _ in range(100):
        response = await h.client.get(f"/v1/scores{query}", headers=AUTH)
        assert response.status == 200, await response.text()
        answer = scores_exchange.read_answer(await response.json())
        if expected is None or int(answer.counts[0].sum()) == expected:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {expected} predictions: {answer.counts[0].sum()}")


async def predict_all(h: Harness) -> None:
    for i, (race, age, risk) in enumerate(zip(RACES, AGES, RISKS, strict=True)):
        h.upstream.risk = risk
        response = await h.predict(
            {"age": age, "equiguard_context": {} if race is None else {"race": race}},
            {"X-Request-Id": f"r-{i}", "X-Patient-Language": "English"},
        )
        assert response.status == 200


def direct(folder: Path) -> tuple[CellLayout, ScoreStatistics, np.ndarray]:
    """The same predictions counted directly by the engine, and their cell rows."""
    spec = config(1, folder).spec
    layout = CellLayout.from_spec(spec.subgroups)
    rows = layout.assign(
        {"race": RACES, "age_band": AGES, "language": ["English"] * len(RACES)}, len(RACES)
    )
    expected = ScoreStatistics.empty(layout.cells, spec.threshold)
    expected.update(rows, np.array(RISKS))
    return layout, expected, rows


def test_the_answer_equals_score_statistics_of_the_same_predictions(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await predict_all(h)
            answer = await scores(h, expected=len(RISKS))
            response = await h.client.get("/v1/scores", headers=AUTH)
            assert response.headers["X-Equiguard-Revision"] == "v1"
        _, expected, _ = direct(tmp_path)
        assert answer.to_dict() == expected.to_dict()
        assert answer.labelled.sum() == 0

    run(scenario)


def test_outcomes_that_join_count_as_labelled_in_their_predictions_cells(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await predict_all(h)
            await h.outcomes([{"request_id": "r-1", "label": 1}, {"request_id": "r-3", "label": 0}])
            # An outcome naming the race of a prediction recorded without it fills the
            # labelled statistics' group, never moves the score already counted.
            await h.outcomes([{"request_id": "r-5", "label": 1, "race": "White"}])
            answer = await scores(h, expected=len(RISKS))
        _, expected, rows = direct(tmp_path)
        expected.record_outcomes(rows[[1, 3, 5]])
        assert answer.to_dict() == expected.to_dict()

    run(scenario)


def test_records_count_once_and_a_repeated_request_id_is_not_counted_again(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await predict_all(h)
            h.upstream.risk = 0.9
            await h.predict({"age": 30}, {"X-Request-Id": "r-0"})  # a retry: stored once
            response = await h.client.post(
                "/v1/records",
                json={"records": [{"request_id": "b-1", "score": 0.4, "label": 1}]},
                headers=AUTH,
            )
            assert (await response.json())["accepted"] == 1
            answer = await scores(h, expected=len(RISKS) + 1)
        assert int(answer.counts[0].sum()) == len(RISKS) + 1
        assert int(answer.labelled[0]) == 1

    run(scenario)


def test_a_restarted_sidecar_answers_as_before(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await predict_all(h)
            await h.outcomes([{"request_id": "r-2", "label": 1}])
            await h.outcomes([{"request_id": "r-5", "label": 0, "race": "Black"}])
            before = (await scores(h, "?window=7d", expected=len(RISKS))).to_dict()
        async with harness(tmp_path) as h:
            after = (await scores(h, "?window=7d")).to_dict()
        assert after == before

    run(scenario)


def test_another_revision_and_a_shorter_window_are_answered_from_the_same_buckets(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await predict_all(h)
            await scores(h, expected=len(RISKS))
            recent = await scores(h, "?window=1h")
            other = await scores(h, "?revision=v0")
        assert int(recent.counts[0].sum()) == len(RISKS)  # made just now
        assert int(other.counts.sum()) == 0

    run(scenario)


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": TOKEN}, 401)],
)
def test_scores_need_the_bearer_token(tmp_path: Path, headers: dict[str, str], status: int) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            for path in ("/v1/scores", "/v1/stats"):  # refused alike
                response = await h.client.get(path, headers=headers)
                assert response.status == status
                assert response.headers["WWW-Authenticate"] == 'Bearer realm="equiguard"'

    run(scenario)


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ("soon", "window must be a duration such as 30m, 24h or 7d"),
        ("400d", "window must be positive and at most 604800 seconds"),
    ],
)
def test_a_bad_window_gets_400_with_the_reason_stats_gives(
    tmp_path: Path, window: str, reason: str
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            answers: list[Any] = []
            for path in ("/v1/scores", "/v1/stats"):
                response = await h.client.get(f"{path}?window={window}", headers=AUTH)
                assert response.status == 400
                answers.append(await response.json())
        assert answers[0] == answers[1]
        assert reason in str(answers[0])

    run(scenario)
