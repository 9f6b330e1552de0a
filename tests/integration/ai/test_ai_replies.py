"""Whole replies through the real consumer, outbox relay, Postgres and RabbitMQ, with loopback
providers and a loopback knowledge service: what the visitor sees, and what the ledger keeps."""
from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from common import events as ev
from services.ai import repository
from scripts.loopback import Hang, Ok, Slow, Status

SHIPPING = {"title": "Shipping", "url": "https://acme.test/shipping", "score": 0.8,
            "snippet": "We ship to all EU countries. Express shipping arrives the next day and costs 12 EUR."}
RETURNS = {"title": "Returns", "url": "https://acme.test/returns", "score": 0.6,
           "snippet": "Bikes can be returned within 30 days of delivery."}


async def ledger(ai, reply_id):
    async with ai.pool.acquire() as conn:
        return await conn.fetchrow("SELECT * FROM replies WHERE reply_id = $1", reply_id)


async def test_local_reply_is_grounded_streamed_and_cited(ai):
    ai.knowledge.passages = [SHIPPING, RETURNS]
    event = ai.request("How much does express shipping cost?", top_k=3, score_threshold=0.2)
    done = await ai.ask(event)
    assert isinstance(done, ev.AiReplyCompletedEvent)
    assert "costs 12 EUR" in done.text and "[1]" in done.text
    assert ai.visitor.streamed_text(event.reply_id) == done.text
    assert ai.visitor.count(event.reply_id, ev.AiReplyChunkEvent) >= 2
    assert [c.title for c in done.citations] == ["Shipping"] and done.answered_from_knowledge
    assert (done.provider, done.usage.cost_usd, done.usage.cached) == ("local", 0.0, False)
    assert done.timings.ttft_ms is not None
    search = ai.knowledge.requests[-1]
    assert search == {"tenant_id": str(event.tenant_id), "chatbot_id": str(event.chatbot_id),
                      "query": event.text, "top_k": 3, "score_threshold": 0.2, "context": []}
    row = await ledger(ai, event.reply_id)
    assert row["status"] == "completed" and row["knowledge_version"] == 1


async def test_knowledge_unreachable_still_answers(ai):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        ai.deps.knowledge.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    done = await ai.ask(ai.request("How much does express shipping cost?"))
    assert isinstance(done, ev.AiReplyCompletedEvent)
    assert done.text == "Sorry, our documents don't cover that." and done.citations == []


async def test_knowledge_404_still_answers(ai):
    ai.knowledge.status = 404
    done = await ai.ask(ai.request("How much does express shipping cost?"))
    assert isinstance(done, ev.AiReplyCompletedEvent) and not done.answered_from_knowledge


async def test_openai_reply_costs_and_cites_what_it_used(ai):
    ai.knowledge.passages = [SHIPPING, RETURNS]
    ai.openai.script = [Ok(["Express shipping ", "costs 12 EUR [1]."], prompt_tokens=1000, completion_tokens=200)]
    event = ai.request("How much is express shipping?", provider="openai", model="gpt-4o-mini")
    done = await ai.ask(event)
    assert done.text == "Express shipping costs 12 EUR [1]." == ai.visitor.streamed_text(event.reply_id)
    assert (done.provider, done.model) == ("openai", "gpt-4o-mini")
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (1000, 200)
    assert done.usage.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)
    assert [c.title for c in done.citations] == ["Shipping"]
    sent = ai.openai.requests[0]
    assert "<knowledge>" in sent["messages"][1]["content"] and "Express shipping" in sent["messages"][1]["content"]
    assert float((await ledger(ai, event.reply_id))["cost_usd"]) == pytest.approx(done.usage.cost_usd, abs=1e-6)


async def test_fallback_provider_answers_when_openai_fails(ai):
    ai.openai.script = [Status(500)]
    ai.anthropic.script = [Ok(["We ship ", "everywhere in the EU."], prompt_tokens=500, completion_tokens=50)]
    event = ai.request("Where do you ship?", provider="openai", model="gpt-4o-mini", fallback_provider="anthropic")
    done = await ai.ask(event)
    assert isinstance(done, ev.AiReplyCompletedEvent)
    assert done.text == "We ship everywhere in the EU." == ai.visitor.streamed_text(event.reply_id)
    assert (done.provider, done.model) == ("anthropic", "claude-haiku-4-5")
    assert done.usage.cost_usd == pytest.approx((500 * 1.0 + 50 * 5.0) / 1e6)
    assert len(ai.openai.requests) == 2  # one retry, then the fallback
    assert (await ledger(ai, event.reply_id))["fallback_used"]
    # a fallback answer is not cached: the same question asks the providers again
    ai.openai.script = [Ok(["Everywhere in the EU."])]
    again = ai.request("Where do you ship?", chatbot_id=event.chatbot_id, tenant_id=event.tenant_id,
                       provider="openai", model="gpt-4o-mini", fallback_provider="anthropic")
    done = await ai.ask(again)
    assert not done.usage.cached and done.provider == "openai"


async def test_all_providers_failing_tells_the_visitor_with_a_code(ai):
    ai.openai.script = [Status(429)]
    event = ai.request("Where do you ship?", provider="openai", model="gpt-4o-mini")
    done = await ai.ask(event)
    assert isinstance(done, ev.AiReplyFailedEvent)
    assert done.code == "rate_limited" and "try again" in done.message
    row = await ledger(ai, event.reply_id)
    assert (row["status"], row["error_code"]) == ("failed", "rate_limited")


async def test_identical_question_is_answered_from_the_cache(ai):
    ai.knowledge.passages = [SHIPPING]
    ai.openai.script = [Ok(["We ship ", "to all EU countries [1]."], prompt_tokens=300, completion_tokens=20)]
    first = ai.request("Where do you ship?", provider="openai", model="gpt-4o-mini")
    done = await ai.ask(first)
    assert not done.usage.cached and len(ai.openai.requests) == 1

    same = ai.request("  where do you SHIP ", provider="openai", model="gpt-4o-mini",
                      chatbot_id=first.chatbot_id, tenant_id=first.tenant_id)
    cached = await ai.ask(same)
    assert cached.text == done.text == ai.visitor.streamed_text(same.reply_id)
    assert ai.visitor.count(same.reply_id, ev.AiReplyChunkEvent) > 1  # streamed like a normal reply
    assert cached.usage.cached and cached.usage.cost_usd == 0
    assert [c.title for c in cached.citations] == ["Shipping"]
    assert len(ai.openai.requests) == 1  # the provider was not asked again

    # other settings (temperature) miss the cache
    warmer = ai.request("Where do you ship?", provider="openai", model="gpt-4o-mini", temperature=0.9,
                        chatbot_id=first.chatbot_id, tenant_id=first.tenant_id)
    assert not (await ai.ask(warmer)).usage.cached

    # knowledge changed: the version is in the key, so the old answer is never served
    ai.knowledge.version = 2
    after = ai.request("Where do you ship?", provider="openai", model="gpt-4o-mini",
                       chatbot_id=first.chatbot_id, tenant_id=first.tenant_id)
    assert not (await ai.ask(after)).usage.cached
    assert len(ai.openai.requests) == 3


def cancel_of(event: ev.AiReplyRequestedEvent, **changes) -> ev.ReplyCancelRequestedEvent:
    return ev.ReplyCancelRequestedEvent(**{"tenant_id": event.tenant_id, "chatbot_id": event.chatbot_id,
                                           "conversation_id": event.conversation_id,
                                           "reply_id": event.reply_id, **changes})


async def test_a_cancel_event_stops_the_reply_while_it_streams(ai):
    """The process streaming the reply has its stream queue bound to the conversation: the
    cancel reaches it at once, with no database polling."""
    ai.openai.script = [Hang(["Our warranty ", "lasts "], hold_s=20)]
    event = ai.request("How long is the warranty?", provider="openai", model="gpt-4o-mini")
    await ai.visitor.watch(event.conversation_id)
    await ai.bus.publish(event)
    await ai.visitor.first_chunk(event.reply_id)
    await ai.bus.publish(cancel_of(event))
    done = await ai.visitor.outcome(event.reply_id)
    assert isinstance(done, ev.AiReplyFailedEvent) and done.code == "cancelled"
    assert done.partial_text == "Our warranty lasts "
    row = await ledger(ai, event.reply_id)
    assert row["status"] == "cancelled" and row["completion_tokens"] > 0


async def test_a_cancel_that_arrives_before_the_reply_starts_stops_it_from_starting(ai):
    event = ai.request("How long is the warranty?", provider="openai", model="gpt-4o-mini")
    await ai.bus.publish(cancel_of(event))

    async def recorded() -> bool:
        async with ai.pool.acquire() as conn:
            return await repository.cancel_requested(conn, event.reply_id, event.tenant_id)
    for _ in range(200):
        if await recorded():
            break
        await asyncio.sleep(0.05)
    done = await ai.ask(event)
    assert isinstance(done, ev.AiReplyFailedEvent) and done.code == "cancelled" and done.partial_text == ""
    assert ai.openai.requests == []


async def test_another_tenant_s_cancel_does_not_stop_the_reply(ai):
    ai.openai.script = [Slow(["Our warranty ", "lasts ", "two years."], gap_s=0.3)]
    event = ai.request("How long is the warranty?", provider="openai", model="gpt-4o-mini")
    await ai.visitor.watch(event.conversation_id)
    await ai.bus.publish(event)
    await ai.visitor.first_chunk(event.reply_id)
    await ai.bus.publish(cancel_of(event, tenant_id=uuid.uuid4()))
    done = await ai.visitor.outcome(event.reply_id)
    assert isinstance(done, ev.AiReplyCompletedEvent)


async def test_expired_cache_entries_are_not_served_and_get_purged(ai):
    tenant, chatbot = uuid.uuid4(), uuid.uuid4()
    async with ai.pool.acquire() as conn:
        await repository.store_cached_reply(conn, "expired-key", tenant, chatbot, 1, "old answer", [], False,
                                            "local", "local-extractive", ttl_s=0)
        assert await repository.cached_reply(conn, "expired-key") is None
        assert await repository.purge_expired_cache(conn) >= 1
