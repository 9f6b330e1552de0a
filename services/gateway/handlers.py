"""What the gateway does with each event it consumes: ``REGISTRY`` maps each event class to its
handlers, each ``on_<event>(event, *, deps)``. (Its stream events go to the StreamHub instead.)"""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from common import events as ev
from common.db import apply_once
from common.handlers import Registry, touches
from services.gateway import repository
from services.gateway.settings import Settings


@dataclass
class Deps:
    pool: asyncpg.Pool


def bootstrap(settings: Settings, pool: asyncpg.Pool, bus=None) -> Deps:
    return Deps(pool=pool)


@touches("counted_messages", "conversation_sequences", "message_seqs")
async def on_visitor_data_erased(event: ev.VisitorDataErasedEvent, *, deps: Deps) -> None:
    """The erased messages' retry guards and the conversations' message counters."""
    await apply_once(deps.pool, event, repository.erase_messages, event.tenant_id, event.conversation_ids,
                     event.message_ids)


REGISTRY: Registry = {
    ev.VisitorDataErasedEvent: [on_visitor_data_erased],
}
