"""The batching writer: acknowledgements only after commit, retries, draining at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from equiguard.sidecar.journal import PredictionJournal
from equiguard.sidecar.records import ItemStatus, Labelled, Outcome, Prediction
from equiguard.sidecar.store import PredictionStore, Upkeep, WriteBatch, WriteResult
from equiguard.sidecar.store_sqlite import SqliteStore
from equiguard.sidecar.writer import RecordWriter, StoreUnavailable


class Disk:
    failing = False


class FlakyStore:
    """The real SQLite store on a disk that can fail (the writer reopens it after a failure)."""

    def __init__(self, path: Path, disk: Disk) -> None:
        self.store = SqliteStore(str(path), owner="a")
        self.disk = disk

    def write(self, batch: WriteBatch, now: float) -> WriteResult:
        if self.disk.failing:
            raise OSError("disk I/O error")
        return self.store.write(batch, now)

    def labelled(self, since: float) -> Iterator[Labelled]:
        return self.store.labelled(since)

    def upkeep(self, now: float, pending_before: float, labelled_before: float) -> Upkeep:
        return self.store.upkeep(now, pending_before, labelled_before)

    def close(self) -> None:
        self.store.close()


def writer_on(
    folder: Path,
    open_store: Callable[[], PredictionStore],
    on_labelled: Callable[[list[Labelled]], None] = lambda labelled: None,
    on_drop: Callable[[int], None] = lambda dropped: None,
    max_queued: int = 100,
) -> RecordWriter:
    """A writer on `open_store` with its journal in `folder`/journal."""
    return RecordWriter(
        open_store,
        PredictionJournal(str(folder / "journal"), "a"),
        on_labelled,
        lambda seconds, rows: None,
        on_drop,
        max_queued,
    )


def prediction(request_id: str) -> Prediction:
    return Prediction(request_id, 1000.0, "v1", {"race": "Black"}, 0.7, True)


def test_outcomes_are_refused_while_the_store_fails_and_queued_predictions_survive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("equiguard.sidecar.writer.RETRY_DELAY_SECONDS", 0.01)
    disk = Disk()
    counted: list[Labelled] = []

    async def scenario() -> None:
        writer = writer_on(
            tmp_path, lambda: FlakyStore(tmp_path / "p.db", disk), on_labelled=counted.extend
        )
        await writer.start()
        disk.failing = True
        writer.record_prediction(prediction("a"))
        with pytest.raises(StoreUnavailable):
            await writer.submit([], [Outcome("a", True, {})])
        assert counted == []
        disk.failing = False
        # The prediction was kept and retried; the feed's retry now joins it.
        _, statuses = await writer.submit([], [Outcome("a", True, {})])
        assert statuses == [ItemStatus.ACCEPTED]
        await writer.close()

    asyncio.run(scenario())
    assert [item.prediction.request_id for item in counted] == ["a"]


def test_closing_commits_every_queued_prediction(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer = writer_on(
            tmp_path, lambda: SqliteStore(str(tmp_path / "p.db"), "a"), max_queued=10_000
        )
        await writer.start()
        for i in range(500):
            writer.record_prediction(prediction(f"r-{i}"))
        await writer.close()

    asyncio.run(scenario())
    assert SqliteStore(str(tmp_path / "p.db"), "a").upkeep(2000.0, 0.0, 0.0).pending == 500


def test_predictions_beyond_the_queue_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    dropped: list[int] = []

    async def scenario() -> None:
        writer = writer_on(
            tmp_path,
            lambda: SqliteStore(str(tmp_path / "p.db"), "a"),
            on_drop=dropped.append,
            max_queued=3,
        )
        await writer.start()
        for i in range(5):
            writer.record_prediction(prediction(f"r-{i}"))
        await writer.close()

    asyncio.run(scenario())
    assert sum(dropped) == 2


def test_predictions_the_store_never_committed_are_written_at_the_next_start(
    tmp_path: Path,
) -> None:
    disk = Disk()

    async def first_run() -> None:
        writer = writer_on(tmp_path, lambda: FlakyStore(tmp_path / "p.db", disk))
        await writer.start()
        disk.failing = True
        for i in range(3):
            writer.record_prediction(prediction(f"r-{i}"))
        await writer.close()  # the store is down: nothing committed

    async def second_run() -> None:
        disk.failing = False
        writer = writer_on(tmp_path, lambda: FlakyStore(tmp_path / "p.db", disk))
        await writer.start()
        _, statuses = await writer.submit([], [Outcome("r-1", True, {})])
        assert statuses == [ItemStatus.ACCEPTED]
        await writer.close()

    asyncio.run(first_run())
    assert SqliteStore(str(tmp_path / "p.db"), "a").upkeep(2000.0, 0.0, 0.0).pending == 0
    asyncio.run(second_run())
    assert SqliteStore(str(tmp_path / "p.db"), "a").upkeep(2000.0, 0.0, 0.0).pending == 2
    assert list((tmp_path / "journal").iterdir()) == []


def test_predictions_are_still_stored_when_the_journal_cannot_be_written(tmp_path: Path) -> None:
    async def scenario() -> None:
        writer = writer_on(tmp_path, lambda: SqliteStore(str(tmp_path / "p.db"), "a"))
        await writer.start()
        (tmp_path / "journal").rmdir()  # no segment can be opened now
        for i in range(3):
            writer.record_prediction(prediction(f"r-{i}"))
        await writer.close()

    asyncio.run(scenario())
    assert SqliteStore(str(tmp_path / "p.db"), "a").upkeep(2000.0, 0.0, 0.0).pending == 3
