"""The one handler of the analytics service: every durable event goes through it.

Events from all queues are recorded in small batches, one transaction per batch: a busy
chatbot's events all update the same rollup rows, and one commit (one WAL flush, one hold of
those row locks) per batch instead of per event is what lets the consumer keep up. Each
handler call still returns only after the transaction holding its event committed, so the
bus acks nothing that is not stored. If a batch fails, its events are retried one by one, so
one bad event cannot hold the others back.
"""
from __future__ import annotations

import asyncio

import asyncpg

from common.events import Event
from common.logging import get_logger
from services.analytics import ingest
from services.analytics.repository import RollupDeltas, month_of

log = get_logger(__name__)


class Recorder:
    def __init__(self, pool: asyncpg.Pool, partitions: ingest.PartitionCache, *, max_batch: int = 200,
                 max_wait_s: float = 0.005) -> None:
        self.pool = pool
        self.partitions = partitions
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: list[tuple[Event, asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def record(self, event: Event) -> None:
        """Store ``event``; returns once it is committed (or was stored before)."""
        await self.partitions.ensure(self.pool, month_of(event.occurred_at))
        future = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flusher(), name="analytics-recorder")
        await asyncio.shield(future)

    async def _flusher(self) -> None:
        while self._pending:
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(self.max_wait_s)  # let the other queues' deliveries join
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    rollups = RollupDeltas()
                    for event, _ in batch:
                        await ingest.record(conn, event, rollups)
                    await rollups.flush(conn)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            except Exception:  # noqa: BLE001 - find the culprit: each event alone
                log.warning("batch_failed_recording_one_by_one", size=len(batch), exc_info=True)
                for event, future in batch:
                    try:
                        async with self.pool.acquire() as conn, conn.transaction():
                            await ingest.record(conn, event)
                    except Exception as exc:  # noqa: BLE001 - this event's handler raises: the bus retries it
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(None)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


async def on_event(event: Event, *, recorder: Recorder) -> None:
    """Store the event and update the rollups; a redelivery changes nothing."""
    await recorder.record(event)
