"""What the ai service does with each event it consumes: ``REGISTRY`` maps each event class to
its handlers, each ``on_<event>(event, *, deps)``; ``bootstrap`` builds the deps; the use
cases are in service.py."""
from __future__ import annotations

import asyncpg

from common import events as ev
from common.handlers import Registry, ordered_by, touches
from common.http import internal_session
from common.settings import service_url
from services.ai import service
from services.ai.keyvault import KeyVault
from services.ai.knowledge import KnowledgeClient
from services.ai.pricing import PriceTable
from services.ai.providers.registry import ProviderRegistry
from services.ai.service import ReplyDeps, ReplyPolicy
from services.ai.settings import Settings


async def bootstrap(settings: Settings, pool: asyncpg.Pool, bus) -> ReplyDeps:
    """The reply pipeline's dependencies, and this process's stream queue for cancel requests."""
    http = internal_session(settings.internal_api_key)
    providers = ProviderRegistry(settings, pool, KeyVault(settings.secret_key))
    policy = ReplyPolicy(deadline_s=settings.ai_deadline_s, first_token_timeout_s=settings.first_token_timeout_s,
                         retries=settings.provider_retries, backoff_s=settings.retry_backoff_s,
                         chunk_interval_s=settings.chunk_interval_ms / 1000)
    knowledge = KnowledgeClient(http, settings.knowledge_url or service_url("knowledge"),
                                timeout_s=settings.knowledge_timeout_s)
    deps = ReplyDeps(pool=pool, bus=bus, providers=providers, policy=policy, knowledge=knowledge,
                     prices=PriceTable.load(settings.prices_file), cache_ttl_s=settings.cache_ttl_s,
                     history_tokens=settings.history_token_budget,
                     knowledge_tokens=settings.knowledge_token_budget,
                     closers=[providers.close, http.close])
    await bus.open_stream(lambda event: on_stream_event(event, deps=deps), events=ev.AI_STREAM_EVENTS)
    return deps


# a conversation's replies stream one after the other, in the order they were asked
@ordered_by(lambda event: event.conversation_id)
@touches("replies", "reply_cache", "query_rewrites", "outbox")
async def on_ai_reply_requested(event: ev.AiReplyRequestedEvent, *, deps: ReplyDeps) -> None:
    await service.generate_reply(event, deps)


@touches("reply_cancellations")
async def on_reply_cancel_requested(event: ev.ReplyCancelRequestedEvent, *, deps: ReplyDeps) -> None:
    await service.record_cancel(deps, event)


@touches("replies", "reply_cache", "query_rewrites", "reply_cancellations")
async def on_chatbot_deleted(event: ev.ChatbotDeletedEvent, *, deps: ReplyDeps) -> None:
    await service.delete_chatbot(deps, event)


@touches("replies", "reply_cache", "query_rewrites", "reply_cancellations", "provider_keys")
async def on_tenant_deleted(event: ev.TenantDeletedEvent, *, deps: ReplyDeps) -> None:
    await service.delete_tenant(deps, event)


@touches("replies", "query_rewrites", "reply_cancellations")
async def on_visitor_data_erased(event: ev.VisitorDataErasedEvent, *, deps: ReplyDeps) -> None:
    await service.erase_visitor(deps, event)


async def on_stream_event(event: ev.Event, *, deps: ReplyDeps) -> None:
    """This process's own stream queue: cancels of the conversations it is answering now."""
    if isinstance(event, ev.ReplyCancelRequestedEvent):
        await service.cancel_here(deps, event)


REGISTRY: Registry = {
    ev.AiReplyRequestedEvent: [on_ai_reply_requested],
    ev.ReplyCancelRequestedEvent: [on_reply_cancel_requested],
    ev.ChatbotDeletedEvent: [on_chatbot_deleted],
    ev.TenantDeletedEvent: [on_tenant_deleted],
    ev.VisitorDataErasedEvent: [on_visitor_data_erased],
}
