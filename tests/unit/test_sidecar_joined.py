"""GET /v1/outcomes/joined: a revision's labelled rows, paged, for the recalibration Job.

The Job of a model whose store is the pod's own SQLite file reads it through this
endpoint (equiguard.recalibration.outcomes.SidecarOutcomes); here both run in
process against the sidecar of tests/unit/test_sidecar_app.py.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
from equiguard.contracts.rows import JOINED_PAGE_MAX, JoinedPage
from equiguard.recalibration.outcomes import SidecarOutcomes, StoreError, open_source
from test_sidecar_app import AUTH, TOKEN, Harness, harness, run, token  # noqa: F401

N, LABELLED = 30, 23


async def _scored(h: Harness) -> None:
    for i in range(N):
        race = "Black" if i % 3 == 0 else "White"
        await h.predict({"age": 30 + i, "equiguard_context": {"race": race}},
                        {"X-Request-Id": f"patient-{i}"})  # fmt: skip
    await h.outcomes([{"request_id": f"patient-{i}", "label": i % 2} for i in range(LABELLED)])


async def _pages(h: Harness, limit: int, **query: str) -> list[JoinedPage]:
    pages: list[JoinedPage] = []
    after = "0"
    while True:
        response = await h.client.get(
            "/v1/outcomes/joined", params={"limit": str(limit), "after": after, **query},
            headers=AUTH,
        )  # fmt: skip
        assert response.status == 200, await response.text()
        text = await response.text()
        assert "patient-" not in text  # no request id leaves the pod this way
        pages.append(JoinedPage.from_dict(await response.json()))
        if pages[-1].next is None:
            return pages
        after = pages[-1].next


def test_every_labelled_row_comes_once_in_pages_with_its_groups_and_no_request_id(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await _scored(h)
            pages = await _pages(h, 7, revision="v1")
            assert [len(p.rows) for p in pages] == [7, 7, 7, 2]
            rows = [row for page in pages for row in page.rows]
            assert sum(label for *_, label in rows) == LABELLED // 2
            assert sorted(g["race"] for _, g, _, _ in rows).count("Black") == 8
            assert all(score == 0.5 for _, _, score, _ in rows)
            assert [len(p.rows) for p in await _pages(h, 23)] == [23]
            assert [len(p.rows) for p in await _pages(h, 5, revision="v2")] == [0]
            # A window of prediction times.
            times = sorted(t for t, *_ in rows)
            window = {"since": repr(times[5]), "until": repr(times[10])}
            assert sum(len(p.rows) for p in await _pages(h, 3, **window)) == 5

    run(scenario)


@pytest.mark.parametrize(
    ("query", "status"),
    [({"limit": "0"}, 400), ({"limit": str(JOINED_PAGE_MAX + 1)}, 400),
     ({"after": "-1"}, 400), ({"since": "later"}, 400), ({"since": "9", "until": "1"}, 400)],
)  # fmt: skip
def test_a_page_is_bounded_and_bad_queries_are_refused(
    tmp_path: Path, query: dict[str, str], status: int
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            response = await h.client.get("/v1/outcomes/joined", params=query, headers=AUTH)
            assert response.status == status

    run(scenario)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_the_rows_need_the_sidecars_token(tmp_path: Path, headers: dict[str, str]) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await _scored(h)
            response = await h.client.get("/v1/outcomes/joined", headers=headers)
            assert response.status == 401
            assert "patient" not in await response.text()

    run(scenario)


def test_the_job_reads_the_window_through_the_sidecar_as_it_would_read_the_file(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with harness(tmp_path) as h:
            await _scored(h)
            url = f"http://127.0.0.1:{h.port}"
            through_api = await asyncio.to_thread(
                SidecarOutcomes(url, TOKEN, page_size=4).joined, "v1", 0.0, math.inf, ["race"]
            )
            from_file = await asyncio.to_thread(
                open_source(str(tmp_path / "p.db")).joined, "v1", 0.0, math.inf, ["race"]
            )
            assert len(through_api) == len(from_file) == LABELLED
            order = _order(through_api)
            assert list(through_api.labels[order]) == list(from_file.labels[_order(from_file)])
            assert list(through_api.groups["race"][order]) == list(
                from_file.groups["race"][_order(from_file)]
            )
            with pytest.raises(StoreError, match="401"):
                await asyncio.to_thread(
                    SidecarOutcomes(url, "wrong").joined, "v1", 0.0, math.inf, ["race"]
                )

    run(scenario)


def test_a_sidecar_url_without_a_token_is_refused_before_any_request() -> None:
    with pytest.raises(StoreError, match="bearer token"):
        open_source("http://readmission-risk.clinical.svc")


def test_a_malformed_page_is_named() -> None:
    good: dict[str, Any] = JoinedPage("v1", ((1.0, {"race": "White"}, 0.2, 1),), None).to_dict()
    assert JoinedPage.from_dict(good).rows == ((1.0, {"race": "White"}, 0.2, 1),)
    for bad in ({**good, "format": "other"}, {**good, "rows": [[1.0, "x", 0.2, 1]]},
                {**good, "rows": [[1.0, {}, 0.2, 2]]}, {**good, "next": 3}):  # fmt: skip
        with pytest.raises(ValueError):
            JoinedPage.from_dict(bad)


def _order(outcomes: Any) -> Any:
    return outcomes.times.argsort(kind="stable")
