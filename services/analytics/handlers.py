from __future__ import annotations

import asyncpg

from common.events import Event
from common.logging import get_logger

log = get_logger(__name__)


async def record_event(event: Event, *, pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO events (event_id, event_type, tenant_id, correlation_id, occurred_at, payload) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        event.event_id, event.name(), event.tenant_id, event.correlation_id, event.occurred_at,
        event.model_dump(mode="json"))
    log.info("event_recorded")
