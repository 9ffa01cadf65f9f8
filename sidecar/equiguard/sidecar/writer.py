"""Batched writes to the prediction store, off the event loop.

The request path only appends a prediction to the journal and to the current
batch and returns; one writer task hands each batch to a single store thread
and commits it in one transaction. Whatever arrives while a batch commits
forms the next one, so the batch grows with the load. Outcomes and records
wait for the commit of their batch: they are acknowledged only once they are
durable, and only then counted in the statistics. A prediction is durable in
the journal before it is answered, and in the store within about
PREDICTION_BATCH_SECONDS plus one commit; at start-up the journal's leftovers
are written to the store before anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from equiguard.sidecar.journal import PredictionJournal
from equiguard.sidecar.records import ItemStatus, Labelled, Outcome, Prediction
from equiguard.sidecar.store import PredictionStore, WriteBatch, WriteResult

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long predictions may wait to be committed together. The journal makes
# them durable meanwhile; a longer wait means fewer commits, and each commit
# costs the event loop time (the store thread competes for the GIL). An
# outcome never waits for it: its batch is committed at once, with every
# prediction queued so far.
PREDICTION_BATCH_SECONDS = 0.2
# How long to wait before retrying queued predictions after the store failed.
RETRY_DELAY_SECONDS = 1.0


class StoreUnavailable(RuntimeError):
    """The store could not commit; nothing of the batch was acknowledged."""


@dataclass
class _Waiter:
    future: asyncio.Future[tuple[list[ItemStatus], list[ItemStatus]]]
    records: slice
    outcomes: slice


class RecordWriter:
    def __init__(
        self,
        open_store: Callable[[], PredictionStore],
        journal: PredictionJournal,
        on_labelled: Callable[[list[Labelled]], None],
        on_commit: Callable[[float, int], None],
        on_drop: Callable[[int], None],
        max_queued_predictions: int,
        clock: Callable[[], float] = time.time,
        on_store: Callable[[bool], None] = lambda available: None,
        on_scored: Callable[[list[Prediction]], None] = lambda scored: None,
    ) -> None:
        self._open_store = open_store
        self._store: PredictionStore | None = None
        self._journal = journal
        self._on_labelled = on_labelled
        self._on_commit = on_commit  # (seconds the commit took, rows in the batch)
        self._on_drop = on_drop  # (predictions this run will not store)
        self._max_queued = max_queued_predictions
        self._clock = clock
        self._on_store = on_store  # (whether the latest work on the store succeeded)
        self._on_scored = on_scored  # (predictions newly stored, whose scores are counted)
        self.store_available = False  # until the store has been opened
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="equiguard-store")
        self._batch = WriteBatch()
        # Journal segments whose predictions are queued but not committed yet.
        self._segments: list[Path] = []
        self._waiters: list[_Waiter] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.call(lambda store: None)  # open the store now: fail fast on a bad path or DSN
        leftovers, segments = self._journal.recover()
        if leftovers:
            batch = WriteBatch(predictions=leftovers)
            await self.call(lambda store: store.write(batch, self._clock()))
            log.info("wrote the journalled predictions of an earlier run to the store")
        self._journal.release(segments)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="equiguard-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def record_prediction(self, prediction: Prediction, encoded_groups: str | None = None) -> None:
        """Queue a prediction; never waits. Drops it (counted) when the store is far behind.
        `encoded_groups`: its groups as encode_groups wrote them, when the caller has them."""
        if len(self._batch.predictions) >= self._max_queued:
            self._on_drop(1)
            return
        try:
            self._journal.append(prediction, encoded_groups)
        except OSError as error:
            # Still answered and queued: only a kill before its commit would lose it.
            log.error("the prediction journal could not be written: %s", type(error).__name__)
        self._batch.predictions.append(prediction)
        self._wakeup.set()

    async def submit(
        self, records: list[tuple[Prediction, bool | None]], outcomes: list[Outcome]
    ) -> tuple[list[ItemStatus], list[ItemStatus]]:
        """Queue records and outcomes and wait until their batch is committed."""
        if self._closing:
            raise StoreUnavailable("the sidecar is shutting down")
        if not records and not outcomes:
            return [], []  # nothing to commit, so nothing to wait for
        batch = self._batch
        waiter = _Waiter(
            asyncio.get_running_loop().create_future(),
            slice(len(batch.records), len(batch.records) + len(records)),
            slice(len(batch.outcomes), len(batch.outcomes) + len(outcomes)),
        )
        batch.records.extend(records)
        batch.outcomes.extend(outcomes)
        self._waiters.append(waiter)
        self._wakeup.set()
        return await waiter.future

    async def call(self, work: Callable[[PredictionStore], T]) -> T:
        """Run `work` on the store's thread, between batches."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._with_store, work
        )

    async def close(self) -> None:
        """Commit what is queued, then close the store."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await self.call(lambda store: store.close())
        self._thread.shutdown(wait=True)
        self._journal.close()

    def _with_store(self, work: Callable[[PredictionStore], T]) -> T:
        try:
            if self._store is None:
                self._store = self._open_store()
            done = work(self._store)
        except Exception:
            # Whatever the backend raised (sqlite3, psycopg or OS errors) is
            # raised again unchanged; only the connection is dropped, so that a
            # broken one is reopened for the next batch.
            self._note_store(False)
            store, self._store = self._store, None
            if store is not None:
                try:
                    store.close()
                except Exception as error:  # closing a broken store may fail too; it is gone
                    log.debug("closing the failed store raised %s", type(error).__name__)
            raise
        self._note_store(True)
        return done

    def _note_store(self, available: bool) -> None:
        if available != self.store_available:
            self.store_available = available
            self._on_store(available)

    async def _run(self) -> None:
        while True:
            if not self._closing:  # once closing, drain without waiting
                await self._wakeup.wait()
                if not self._waiters and not self._closing:
                    # Only predictions, which nobody waits for: let a few more
                    # join the batch, so the store thread wakes far less often
                    # than requests arrive (each wake-up costs the loop the GIL).
                    await asyncio.sleep(PREDICTION_BATCH_SECONDS)
            self._wakeup.clear()
            batch, waiters = self._batch, self._waiters
            self._batch, self._waiters = WriteBatch(), []
            segment = self._journal.rotate()  # holds exactly this batch's new predictions
            segments, self._segments = self._segments + ([segment] if segment else []), []
            if len(batch):
                await self._commit(batch, waiters, segments)
            elif self._closing:
                return

    async def _commit(
        self, batch: WriteBatch, waiters: list[_Waiter], segments: list[Path]
    ) -> None:
        started = time.perf_counter()
        try:
            result: WriteResult = await self.call(lambda store: store.write(batch, self._clock()))
        except Exception as error:
            # The reason is a type name: store errors may quote the rows.
            log.error("the prediction store failed to commit: %s", type(error).__name__)
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(
                        StoreUnavailable("the prediction store is unavailable")
                    )
            if self._closing:
                # No retry at shutdown: the journal keeps these predictions
                # for the next start; count them as not stored by this run.
                self._on_drop(len(batch.predictions))
                return
            self._segments[:0] = segments  # released once the requeued predictions commit
            self._requeue(batch.predictions)
            await asyncio.sleep(RETRY_DELAY_SECONDS)
            return
        self._on_commit(time.perf_counter() - started, len(batch))
        self._journal.release(segments)
        self._on_scored(result.scored)
        self._on_labelled(result.labelled)
        for waiter in waiters:
            if not waiter.future.done():  # its caller may have gone (client disconnected)
                waiter.future.set_result(
                    (result.record_status[waiter.records], result.outcome_status[waiter.outcomes])
                )

    def _requeue(self, predictions: list[Prediction]) -> None:
        room = max(0, self._max_queued - len(self._batch.predictions))
        if len(predictions) > room:
            self._on_drop(len(predictions) - room)
        self._batch.predictions[:0] = predictions[:room]
        if self._batch.predictions:
            self._wakeup.set()
