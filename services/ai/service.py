"""One reply: ask knowledge for passages, build the prompt, answer from the cache or stream from
the provider chain (retries with backoff, a first-token timeout per attempt, the fallback
provider, one overall deadline), publish coalesced chunks, then the completion with its cost.

A reply is cancelled by ``ReplyCancelRequestedEvent``. While it streams, the ai process holding
it has its stream queue bound to the conversation, so the cancel reaches that process at once,
whichever replica it is; ai's durable queue also records the cancel, for a reply that has not
started yet (checked once, after binding, so nothing falls in between).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Awaitable, Callable

import asyncpg

from common import events as ev
from common import metrics
from common.db import apply_once, claim, enqueue
from common.logging import get_logger
from services.ai import analysis, repository
from services.ai.coalesce import coalesce
from services.ai.knowledge import KnowledgeClient, Retrieved
from services.ai.pricing import PriceTable
from services.ai.retrieval import Retrieval, plan as plan_retrieval
from services.ai.prompt import Prompt, build_prompt, estimate_tokens
from services.ai.providers.base import (CANCELLED, DEADLINE_EXCEEDED, FIRST_TOKEN_TIMEOUT, NOT_CONFIGURED,
                                        PromptRequest, Provider, ProviderError, StreamResult)

log = get_logger(__name__)

FAILED_MESSAGE = "Sorry, I can't answer right now. Please try again in a moment."
CANCELLED_MESSAGE = "The reply was stopped."
_WORDS = re.compile(r"\S+\s*")
_MARKER = re.compile(r"\[(\d{1,2})\]")


@dataclass
class ReplyPolicy:
    deadline_s: float                     # the whole reply, every attempt included (from REPLY_DEADLINE_SECONDS)
    first_token_timeout_s: float = 20.0   # one attempt's wait for its first token
    retries: int = 2                      # extra attempts on one provider for retryable errors
    backoff_s: float = 0.5                # doubled each retry, with jitter
    chunk_interval_s: float = 0.04


class ProviderSource:
    """What the pipeline needs of the provider registry (see providers/registry.py)."""

    async def get(self, tenant_id: uuid.UUID, name: str) -> Provider: ...

    def default_model(self, name: str) -> str: ...


class CancelBoard:
    """In-flight replies of this process, so a cancel request that lands here stops at once."""

    def __init__(self) -> None:
        self._events: dict[tuple[uuid.UUID, uuid.UUID], asyncio.Event] = {}

    def track(self, tenant_id: uuid.UUID, reply_id: uuid.UUID) -> asyncio.Event:
        return self._events.setdefault((tenant_id, reply_id), asyncio.Event())

    def forget(self, tenant_id: uuid.UUID, reply_id: uuid.UUID) -> None:
        self._events.pop((tenant_id, reply_id), None)

    def cancel(self, tenant_id: uuid.UUID, reply_id: uuid.UUID) -> bool:
        event = self._events.get((tenant_id, reply_id))
        if event is None:
            return False
        event.set()
        return True


@dataclass
class ReplyDeps:
    pool: asyncpg.Pool
    bus: object
    providers: ProviderSource
    policy: ReplyPolicy
    knowledge: KnowledgeClient | None = None
    prices: PriceTable = field(default_factory=PriceTable)
    cache_ttl_s: int = 3600
    history_tokens: int = 1500
    knowledge_tokens: int = 3000
    cancels: CancelBoard = field(default_factory=CancelBoard)
    # what bootstrap opened for these deps, closed at shutdown
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in self.closers:
            await close()


# --- the provider chain ----------------------------------------------------------------------

@dataclass
class Outcome:
    text: str
    result: StreamResult
    provider: str
    model: str
    fallback_used: bool
    # the first token's moment twice: on this process's clock, for ttft_ms, and as epoch
    # seconds (``Timings.first_token_at``), which other processes can compare with theirs
    first_token_clock: float | None = None   # time.perf_counter()
    first_token_at: float | None = None      # time.time()


@dataclass
class Partial:
    """What the visitor has seen of the current attempt: the cancel path reports it."""
    text: str = ""
    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0


async def _first_token_guard(pieces: AsyncIterator[str], timeout_s: float) -> AsyncIterator[str]:
    iterator = pieces.__aiter__()
    try:
        try:
            first = await asyncio.wait_for(iterator.__anext__(), timeout_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise ProviderError(FIRST_TOKEN_TIMEOUT, f"no first token within {timeout_s:g}s") from None
        yield first
        async for piece in iterator:
            yield piece
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: BLE001 - the stream is being abandoned anyway
                pass


async def stream_with_fallback(request: PromptRequest, chain: list[tuple[str, str]], providers: ProviderSource,
                               tenant_id: uuid.UUID, policy: ReplyPolicy,
                               on_attempt: Callable[[str, str, int], Awaitable[None]],
                               emit: Callable[[str], Awaitable[None]]) -> Outcome:
    """Try ``chain`` ([(provider, model)...]) in order until one streams a whole reply.

    Retryable errors are retried on the same provider with exponential backoff (a provider that
    was too slow to start is not retried when a fallback is left); non-retryable ones move on at
    once. Everything must finish within ``policy.deadline_s``, else DEADLINE_EXCEEDED.
    ``on_attempt(provider, model, n)`` runs before every attempt; ``emit`` gets coalesced text.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.deadline_s
    last_error: ProviderError | None = None
    first_token: dict[str, float | None] = {"at": None, "wall": None}

    async def timed_emit(text: str) -> None:
        if first_token["at"] is None:
            first_token["at"], first_token["wall"] = time.perf_counter(), time.time()
        await emit(text)

    for position, (name, model) in enumerate(chain):
        has_fallback = position + 1 < len(chain)
        try:
            provider = await providers.get(tenant_id, name)
        except ProviderError as exc:
            last_error = exc
            log.warning("provider_unavailable", provider=name, code=exc.code, error=str(exc))
            continue
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProviderError(DEADLINE_EXCEEDED, "the reply ran out of time", retryable=False)
            attempt += 1
            await on_attempt(name, model, attempt)
            first_token["at"] = first_token["wall"] = None
            result = StreamResult()
            pieces = _first_token_guard(provider.stream(replace(request, model=model), result),
                                        min(policy.first_token_timeout_s, remaining))
            try:
                text = await asyncio.wait_for(coalesce(pieces, timed_emit, policy.chunk_interval_s), remaining)
            except asyncio.TimeoutError:
                raise ProviderError(DEADLINE_EXCEEDED, "the reply ran out of time", retryable=False) from None
            except ProviderError as exc:
                if exc.code == CANCELLED:
                    raise
                last_error = exc
                log.warning("provider_failed", provider=name, model=model, attempt=attempt, code=exc.code,
                            retryable=exc.retryable, error=str(exc)[:300])
                give_up = (not exc.retryable or attempt > policy.retries
                           or (exc.code == FIRST_TOKEN_TIMEOUT and has_fallback))
                if give_up:
                    break
                delay = policy.backoff_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                if loop.time() + delay >= deadline:
                    break
                await asyncio.sleep(delay)
                continue
            finally:
                try:
                    await pieces.aclose()
                except Exception:  # noqa: BLE001 - still running in a cancelled step: dropped anyway
                    pass
            return Outcome(text=text, result=result, provider=name, model=model, fallback_used=position > 0,
                           first_token_clock=first_token["at"], first_token_at=first_token["wall"])
    raise last_error or ProviderError(NOT_CONFIGURED, "no provider configured", retryable=False)


# --- the cache -------------------------------------------------------------------------------

def normalise_question(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def cache_key(tenant_id: uuid.UUID, bot: ev.ChatbotSnapshot, question: str, knowledge_version: int,
              history: list[ev.HistoryMessage]) -> str:
    """Everything that shapes the answer: change any of it and the old entry is never hit.
    ``history`` is the conversation the prompt carries (and the follow-up's search reads):
    a reply is shared only between conversations that said exactly the same before it,
    which in practice means first questions (see docs/ai.md, "The reply cache")."""
    settings = bot.model_dump(mode="json")
    material = json.dumps({"t": str(tenant_id), "q": normalise_question(question), "kv": knowledge_version,
                           "bot": settings, "h": [[h.role, h.text] for h in history]},
                          sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()


async def _words(text: str) -> AsyncIterator[str]:
    for word in _WORDS.findall(text):
        yield word
        await asyncio.sleep(0)


# --- one reply -------------------------------------------------------------------------------

def _citations(outcome: Outcome, prompt: Prompt) -> tuple[list[ev.Citation], bool]:
    """The local provider names the passages it quoted; an LLM's [n] markers point into the
    prompt's numbered passages, so the list keeps that numbering up to the highest cited."""
    if outcome.result.citations or outcome.provider == "local":
        return outcome.result.citations, outcome.result.answered_from_knowledge
    cited = [int(n) for n in _MARKER.findall(outcome.text) if 1 <= int(n) <= len(prompt.passages)]
    if not cited:
        return [], False
    return [p.citation() for p in prompt.passages[:max(cited)]], True


async def generate_reply(event: ev.AiReplyRequestedEvent, deps: ReplyDeps) -> None:
    async with deps.pool.acquire() as conn:
        if await repository.reply_recorded(conn, event.reply_id):
            return  # redelivered after it was finished: the outbox publishes (or published) it
    cancel_event = deps.cancels.track(event.tenant_id, event.reply_id)
    # cancel requests for this conversation now reach this process's stream queue
    await deps.bus.bind_stream(str(event.conversation_id))
    try:
        await _generate(event, deps, cancel_event)
    finally:
        deps.cancels.forget(event.tenant_id, event.reply_id)
        await deps.bus.unbind_stream(str(event.conversation_id))


async def _generate(event: ev.AiReplyRequestedEvent, deps: ReplyDeps, cancel_event: asyncio.Event) -> None:
    started = time.perf_counter()
    bot = event.chatbot
    ids = dict(tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
               reply_id=event.reply_id, reply_seq=event.reply_seq)
    partial = Partial(provider=bot.provider, model=bot.model)

    async def cancelled_before_start() -> bool:
        if cancel_event.is_set():
            return True
        async with deps.pool.acquire() as conn:
            return await repository.cancel_requested(conn, event.reply_id, event.tenant_id)

    if await cancelled_before_start():
        await _fail(event, deps, ids, ProviderError(CANCELLED, "cancelled before it started", retryable=False),
                    partial, started)
        return
    await deps.bus.publish(ev.AiReplyStartedEvent(**ids, visitor_message_id=event.visitor_message_id))

    search = Retrieved()
    retrieval = Retrieval(query=event.text)
    if deps.knowledge is not None:
        retrieval = await plan_retrieval(event, deps)
        search = await deps.knowledge.search(event.tenant_id, event.chatbot_id, retrieval.query,
                                             context=retrieval.context, top_k=bot.top_k,
                                             score_threshold=bot.score_threshold)
    prompt = build_prompt(bot, event.text, event.history, search.passages,
                          history_tokens=deps.history_tokens, knowledge_tokens=deps.knowledge_tokens)
    request = PromptRequest(chatbot=bot, message=event.text, history=event.history,
                            passages=list(prompt.passages), model=bot.model, prompt=prompt,
                            retrieval_query=retrieval.standalone)
    partial.prompt_tokens = prompt.estimated_tokens

    seq = 0
    offset = 0

    async def emit(text: str) -> None:
        nonlocal seq, offset
        if cancel_event.is_set():  # the cancel stops the very next chunk
            raise ProviderError(CANCELLED, "the reply was cancelled", retryable=False)
        seq += 1
        await deps.bus.publish(ev.AiReplyChunkEvent(**ids, seq=seq, offset=offset, text=text))
        offset += len(text)
        partial.text += text

    async def on_attempt(provider: str, model: str, attempt: int) -> None:
        nonlocal offset
        if offset:  # the visitor saw part of a failed attempt: tell the stream to start over
            await deps.bus.publish(ev.AiReplyStartedEvent(**ids, visitor_message_id=event.visitor_message_id))
        offset = 0
        partial.text, partial.provider, partial.model = "", provider, model

    key = (cache_key(event.tenant_id, bot, event.text, search.knowledge_version, prompt.history)
           if search.knowledge_version is not None else None)
    cached = None
    if key is not None:
        async with deps.pool.acquire() as conn:
            cached = await repository.cached_reply(conn, key)

    async def produce() -> Outcome:
        if cached is not None:
            first = {"at": None, "wall": None}

            async def timed(text: str) -> None:
                if first["at"] is None:
                    first["at"], first["wall"] = time.perf_counter(), time.time()
                await emit(text)
            await on_attempt(cached["provider"], cached["model"], 1)
            text = await coalesce(_words(cached["text"]), timed, deps.policy.chunk_interval_s)
            result = StreamResult(citations=[ev.Citation.model_validate(c) for c in cached["citations"]],
                                  answered_from_knowledge=cached["answered_from_knowledge"])
            return Outcome(text=text, result=result, provider=cached["provider"], model=cached["model"],
                           fallback_used=False, first_token_clock=first["at"], first_token_at=first["wall"])
        chain = [(bot.provider, bot.model)]
        if bot.fallback_provider and bot.fallback_provider != bot.provider:
            chain.append((bot.fallback_provider, deps.providers.default_model(bot.fallback_provider)))
        return await stream_with_fallback(request, chain, deps.providers, event.tenant_id, deps.policy,
                                          on_attempt, emit)

    try:
        outcome = await _race_cancel(produce(), cancel_event)
    except ProviderError as exc:
        await _fail(event, deps, ids, exc, partial, started)
        return

    total_ms = (time.perf_counter() - started) * 1000
    ttft_ms = (outcome.first_token_clock - started) * 1000 if outcome.first_token_clock else None
    if ttft_ms is not None:
        metrics.TIME_TO_FIRST_TOKEN.labels("ai", outcome.provider).observe(ttft_ms / 1000)
    result = outcome.result
    citations, from_knowledge = _citations(outcome, prompt)
    if cached is not None:
        usage = ev.Usage(cached=True)
    else:
        usage = ev.Usage(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens,
                         cost_usd=deps.prices.cost(outcome.model, result.prompt_tokens, result.completion_tokens,
                                                   outcome.provider))
    text = outcome.text
    completed = ev.AiReplyCompletedEvent(
        **ids, visitor_message_id=event.visitor_message_id, text=text, citations=citations,
        sentiment=analysis.sentiment(text), intent=analysis.classify_intent(text),
        visitor_sentiment=analysis.sentiment(event.text), visitor_intent=analysis.classify_intent(event.text),
        provider=outcome.provider, model=outcome.model, usage=usage,
        timings=ev.Timings(ttft_ms=ttft_ms, total_ms=total_ms, first_token_at=outcome.first_token_at),
        answered_from_knowledge=from_knowledge)
    # fallback answers (another provider, or the persona's "I don't know") are not cached
    cacheable = (key is not None and cached is None and not outcome.fallback_used
                 and not result.used_fallback_text and bool(text.strip()))
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.record_reply(conn, completed, fallback_used=outcome.fallback_used,
                                      knowledge_version=search.knowledge_version)
        if cacheable:
            await repository.store_cached_reply(
                conn, key, event.tenant_id, event.chatbot_id, search.knowledge_version, text,
                [c.model_dump(mode="json") for c in citations], from_knowledge, outcome.provider, outcome.model,
                deps.cache_ttl_s)
        await enqueue(conn, completed)
    log.info("reply_completed", provider=outcome.provider, model=outcome.model, cached=usage.cached,
             fallback_used=outcome.fallback_used, ttft_ms=ttft_ms, total_ms=round(total_ms, 1), chunks=seq,
             chars=len(text), cost_usd=usage.cost_usd, passages=len(prompt.passages))


async def _race_cancel(work: Awaitable[Outcome], cancel_event: asyncio.Event) -> Outcome:
    """Run ``work``; stop it the moment the cancel reaches this process, even while the
    provider is silent."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(cancel_event.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, ProviderError):
            pass
        raise ProviderError(CANCELLED, "the reply was cancelled", retryable=False)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()


async def _fail(event: ev.AiReplyRequestedEvent, deps: ReplyDeps, ids: dict, error: ProviderError,
                partial: Partial, started: float) -> None:
    total_ms = (time.perf_counter() - started) * 1000
    cancelled = error.code == CANCELLED
    # a cancelled stream was billed for what it produced: estimate it, the usage chunk never came
    prompt_tokens = partial.prompt_tokens if cancelled and partial.text else 0
    completion_tokens = estimate_tokens(partial.text) if cancelled else 0
    cost = deps.prices.cost(partial.model, prompt_tokens, completion_tokens, partial.provider)
    failed = ev.AiReplyFailedEvent(**ids, visitor_message_id=event.visitor_message_id, code=error.code,
                                   message=CANCELLED_MESSAGE if cancelled else FAILED_MESSAGE,
                                   partial_text=partial.text if cancelled else "")
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.record_failure(conn, event, partial.provider, partial.model, total_ms, code=error.code,
                                        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                        cost_usd=cost)
        await enqueue(conn, failed)
    if cancelled:
        log.info("reply_cancelled", chars=len(partial.text))
    else:
        log.error("reply_failed", code=failed.code, error=str(error)[:300])


# --- cancel requests and lifecycles ----------------------------------------------------------

async def cancel_here(deps: ReplyDeps, event: ev.ReplyCancelRequestedEvent) -> None:
    """A cancel on this process's stream queue: the reply it streams stops at its next chunk."""
    if deps.cancels.cancel(event.tenant_id, event.reply_id):
        log.info("reply_cancel_received", reply_id=str(event.reply_id))


async def record_cancel(deps: ReplyDeps, event: ev.ReplyCancelRequestedEvent) -> None:
    """The durable copy: a reply that has not started yet finds the flag when it starts."""
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        if await repository.reply_status(conn, event.reply_id, event.tenant_id) is None:
            await repository.request_cancel(conn, event.reply_id, event.tenant_id)
    deps.cancels.cancel(event.tenant_id, event.reply_id)


async def delete_chatbot(deps: ReplyDeps, event: ev.ChatbotDeletedEvent) -> None:
    await apply_once(deps.pool, event, repository.delete_chatbot, event.tenant_id, event.chatbot_id)
    log.info("chatbot_ledger_deleted", chatbot_id=str(event.chatbot_id))


async def delete_tenant(deps: ReplyDeps, event: ev.TenantDeletedEvent) -> None:
    await apply_once(deps.pool, event, repository.delete_tenant, event.tenant_id)
    log.info("tenant_ledger_deleted")


async def erase_visitor(deps: ReplyDeps, event: ev.VisitorDataErasedEvent) -> None:
    await apply_once(deps.pool, event, repository.delete_conversations, event.tenant_id, event.conversation_ids,
                     event.message_ids)
