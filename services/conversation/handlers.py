"""What the conversation service does with each event it consumes: ``REGISTRY`` maps each
event class to its handlers, each ``on_<event>(event, *, deps)``; the use cases are in service.py."""
from __future__ import annotations

import asyncpg

from common import events as ev
from common.handlers import Registry, ordered_by, touches
from services.conversation import service
from services.conversation.service import Deps
from services.conversation.settings import Settings


def bootstrap(settings: Settings, pool: asyncpg.Pool, bus=None) -> Deps:
    return Deps(pool=pool, settings=settings)


# one conversation's messages one at a time, in the order the queue delivers them
@ordered_by(lambda event: event.conversation_id)
@touches("conversations", "messages", "outbox")
async def on_visitor_message_received(event: ev.VisitorMessageReceivedEvent, *, deps: Deps) -> None:
    await service.store_visitor_message(deps, event)


@touches("messages")
async def on_ai_reply_completed(event: ev.AiReplyCompletedEvent, *, deps: Deps) -> None:
    await service.complete_reply(deps, event)


@touches("messages")
async def on_ai_reply_failed(event: ev.AiReplyFailedEvent, *, deps: Deps) -> None:
    await service.fail_reply(deps, event)


@touches("messages")
async def on_avatar_animation_selected(event: ev.AvatarAnimationSelectedEvent, *, deps: Deps) -> None:
    await service.store_animation(deps, event)


@touches("messages")
async def on_feedback_given(event: ev.FeedbackGivenEvent, *, deps: Deps) -> None:
    await service.store_feedback(deps, event)


@touches("conversations")
async def on_handoff_requested(event: ev.HandoffRequestedEvent, *, deps: Deps) -> None:
    await service.request_handoff(deps, event)


@touches("visitors", "conversations", "messages")
async def on_chatbot_deleted(event: ev.ChatbotDeletedEvent, *, deps: Deps) -> None:
    await service.delete_chatbot(deps, event)


@touches("visitors", "conversations", "messages")
async def on_tenant_deleted(event: ev.TenantDeletedEvent, *, deps: Deps) -> None:
    await service.delete_tenant(deps, event)


@touches("visitors", "conversations", "messages", "outbox")
async def on_visitor_data_erasure_requested(event: ev.VisitorDataErasureRequestedEvent, *, deps: Deps) -> None:
    await service.erase_visitor(deps, event)


REGISTRY: Registry = {
    ev.VisitorMessageReceivedEvent: [on_visitor_message_received],
    ev.AiReplyCompletedEvent: [on_ai_reply_completed],
    ev.AiReplyFailedEvent: [on_ai_reply_failed],
    ev.AvatarAnimationSelectedEvent: [on_avatar_animation_selected],
    ev.FeedbackGivenEvent: [on_feedback_given],
    ev.HandoffRequestedEvent: [on_handoff_requested],
    ev.ChatbotDeletedEvent: [on_chatbot_deleted],
    ev.TenantDeletedEvent: [on_tenant_deleted],
    ev.VisitorDataErasureRequestedEvent: [on_visitor_data_erasure_requested],
}
