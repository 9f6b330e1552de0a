"""One reply: stream it from the provider, publish coalesced chunks, then the completion."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from common import events as ev
from common import metrics
from common.db import claim, enqueue
from common.logging import get_logger
from services.ai import analysis, repository
from services.ai.coalesce import coalesce
from services.ai.providers import PromptRequest, Provider, ProviderError, StreamResult

log = get_logger(__name__)


@dataclass
class ReplyDeps:
    pool: asyncpg.Pool
    bus: object
    providers: dict[str, Provider]
    chunk_interval_s: float
    deadline_s: float


async def generate_reply(event: ev.AiReplyRequestedEvent, deps: ReplyDeps) -> None:
    async with deps.pool.acquire() as conn:
        if await repository.reply_recorded(conn, event.reply_id):
            return  # redelivered after it was finished: the outbox publishes (or published) it
    started = time.perf_counter()
    ids = dict(tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
               reply_id=event.reply_id, reply_seq=event.reply_seq)
    await deps.bus.publish(ev.AiReplyStartedEvent(**ids))
    bot = event.chatbot
    request = PromptRequest(chatbot=bot, message=event.text, history=event.history)
    chain = [bot.provider] + ([bot.fallback_provider] if bot.fallback_provider not in (None, bot.provider) else [])
    first_token_at: float | None = None
    first_token_wall: float | None = None
    error: ProviderError | None = None
    for provider_name in chain:
        provider = deps.providers.get(provider_name)
        if provider is None:
            error = ProviderError("provider_unavailable", f"provider {provider_name} is not configured", retryable=False)
            continue
        result = StreamResult()
        seq = 0
        offset = 0

        async def emit(text: str) -> None:
            nonlocal seq, offset, first_token_at, first_token_wall
            if first_token_at is None:
                first_token_at, first_token_wall = time.perf_counter(), time.time()
            seq += 1
            await deps.bus.publish(ev.AiReplyChunkEvent(**ids, seq=seq, offset=offset, text=text))
            offset += len(text)

        try:
            text = await asyncio.wait_for(
                coalesce(provider.stream(request, result), emit, deps.chunk_interval_s), deps.deadline_s)
        except (ProviderError, asyncio.TimeoutError) as exc:
            error = exc if isinstance(exc, ProviderError) else ProviderError("timeout", "the provider took too long")
            log.warning("provider_failed", provider=provider_name, code=error.code, error=str(error))
            if offset:  # the visitor saw part of a reply; start over on the next provider
                await deps.bus.publish(ev.AiReplyStartedEvent(**ids))
            first_token_at = None
            continue
        total_ms = (time.perf_counter() - started) * 1000
        ttft_ms = (first_token_at - started) * 1000 if first_token_at else None
        if ttft_ms is not None:
            metrics.TIME_TO_FIRST_TOKEN.labels("ai", provider_name).observe(ttft_ms / 1000)
        completed = ev.AiReplyCompletedEvent(
            **ids, visitor_message_id=event.visitor_message_id, text=text, citations=result.citations,
            sentiment=analysis.sentiment(text), intent=analysis.classify_intent(text),
            visitor_sentiment=analysis.sentiment(event.text), visitor_intent=analysis.classify_intent(event.text),
            provider=provider_name, model=bot.model if provider_name == bot.provider else provider_name,
            usage=ev.Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens),
            timings=ev.Timings(ttft_ms=ttft_ms, total_ms=total_ms, first_token_at=first_token_wall),
            answered_from_knowledge=result.answered_from_knowledge)
        async with deps.pool.acquire() as conn, conn.transaction():
            if not await claim(conn, event):
                return
            await repository.record_reply(conn, completed)
            await enqueue(conn, completed)
        log.info("reply_completed", provider=provider_name, ttft_ms=ttft_ms, total_ms=round(total_ms, 1),
                 chunks=seq, chars=len(text))
        return
    total_ms = (time.perf_counter() - started) * 1000
    failed = ev.AiReplyFailedEvent(**ids, code=error.code if error else "provider_error",
                                   message="Sorry, I can't answer right now. Please try again in a moment.")
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.record_failure(conn, event, bot.provider, bot.model, total_ms)
        await enqueue(conn, failed)
    log.error("reply_failed", code=failed.code)
