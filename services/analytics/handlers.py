"""What the analytics service does with each event: ``REGISTRY`` maps each event class to its
handlers, each ``on_<event>(event, *, deps)``. Every durable event is recorded (``on_event``),
except the lifecycle events, which erase instead: a raw copy of an erasure would keep the very
ids it erases.

Events from all queues are recorded in small batches, one transaction per batch: a busy
chatbot's events all update the same rollup rows, and one commit (one WAL flush, one hold of
those row locks) per batch instead of per event is what lets the consumer keep up. Each
handler call still returns only after the transaction holding its event committed, so the
bus acks nothing that is not stored. If a batch fails, its events are retried one by one, so
one bad event cannot hold the others back.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from common import events as ev
from common.db import apply_once, claim
from common.events import Event
from common.handlers import Registry, touches
from common.logging import get_logger
from common.topology import SUBSCRIPTIONS
from services.analytics import ingest
from services.analytics import repository as repo
from services.analytics.repository import RollupDeltas, month_of
from services.analytics.settings import Settings

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


@dataclass
class Deps:
    pool: asyncpg.Pool
    settings: Settings
    partitions: ingest.PartitionCache
    recorder: Recorder


def bootstrap(settings: Settings, pool: asyncpg.Pool, bus=None) -> Deps:
    partitions = ingest.PartitionCache()
    return Deps(pool=pool, settings=settings, partitions=partitions, recorder=Recorder(pool, partitions))


@touches(*repo.TENANT_TABLES)
async def on_event(event: Event, *, deps: Deps) -> None:
    """Store the event and update the rollups; a redelivery changes nothing."""
    await deps.recorder.record(event)


@touches(*repo.TENANT_TABLES)
async def on_chatbot_deleted(event: ev.ChatbotDeletedEvent, *, deps: Deps) -> None:
    await apply_once(deps.pool, event, repo.delete_chatbot, event.tenant_id, event.chatbot_id)
    log.info("chatbot_analytics_deleted", chatbot_id=str(event.chatbot_id))


@touches(*repo.TENANT_TABLES, "tenant_settings")
async def on_tenant_deleted(event: ev.TenantDeletedEvent, *, deps: Deps) -> None:
    await apply_once(deps.pool, event, repo.delete_tenant, event.tenant_id)
    log.info("tenant_analytics_deleted")


@touches(*repo.VISITOR_TABLES)
async def on_visitor_data_erasure_requested(event: ev.VisitorDataErasureRequestedEvent, *, deps: Deps) -> None:
    await _erase_visitor(deps, event, [])


@touches(*repo.VISITOR_TABLES)
async def on_visitor_data_erased(event: ev.VisitorDataErasedEvent, *, deps: Deps) -> None:
    """The conversation service's list also covers conversations analytics saw no start of."""
    await _erase_visitor(deps, event, event.conversation_ids)


async def _erase_visitor(deps: Deps, event, conversation_ids: list) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        conversations = await repo.visitor_conversations(conn, event.tenant_id, event.chatbot_id, event.visitor_id,
                                                         conversation_ids)
        await repo.delete_visitor(conn, event.tenant_id, event.chatbot_id, event.visitor_id, conversations)
    log.info("visitor_analytics_erased", conversations=len(conversations))


ERASERS = {
    ev.ChatbotDeletedEvent: on_chatbot_deleted,
    ev.TenantDeletedEvent: on_tenant_deleted,
    ev.VisitorDataErasureRequestedEvent: on_visitor_data_erasure_requested,
    ev.VisitorDataErasedEvent: on_visitor_data_erased,
}
assert set(ERASERS) == set(ev.LIFECYCLE_EVENTS)
# every durable event class, each on its own queue (<EventClass>.analytics)
REGISTRY: Registry = {cls: [ERASERS.get(cls, on_event)] for cls in SUBSCRIPTIONS["analytics"]}
