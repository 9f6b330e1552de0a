"""What the avatar service does with each event it consumes: ``REGISTRY`` maps each event
class to its handlers, each ``on_<event>(event, *, deps)``; the use cases are in service.py."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from common import events as ev
from common.handlers import Registry, touches
from services.avatar import service
from services.avatar.settings import Settings
from services.avatar.storage import AvatarStore


@dataclass
class Deps:
    pool: asyncpg.Pool
    store: AvatarStore


def bootstrap(settings: Settings, pool: asyncpg.Pool, bus=None) -> Deps:
    return Deps(pool=pool, store=AvatarStore(settings.storage_dir))


@touches("animation_selections", "outbox")
async def on_ai_reply_completed(event: ev.AiReplyCompletedEvent, *, deps: Deps) -> None:
    await service.animate_reply(deps.pool, event)


@touches("chatbot_avatars", "chatbot_animation_maps", "animation_selections")
async def on_chatbot_deleted(event: ev.ChatbotDeletedEvent, *, deps: Deps) -> None:
    await service.delete_chatbot(deps.pool, event)


@touches("avatars", "chatbot_avatars", "chatbot_animation_maps", "animation_selections")
async def on_tenant_deleted(event: ev.TenantDeletedEvent, *, deps: Deps) -> None:
    await service.delete_tenant(deps.pool, deps.store, event)


@touches("animation_selections")
async def on_visitor_data_erased(event: ev.VisitorDataErasedEvent, *, deps: Deps) -> None:
    await service.erase_visitor(deps.pool, event)


REGISTRY: Registry = {
    ev.AiReplyCompletedEvent: [on_ai_reply_completed],
    ev.ChatbotDeletedEvent: [on_chatbot_deleted],
    ev.TenantDeletedEvent: [on_tenant_deleted],
    ev.VisitorDataErasedEvent: [on_visitor_data_erased],
}
