"""The analytics service against real Postgres and RabbitMQ: its own throwaway database and
vhost per test, the real consumer on every event class, and a publisher like the other services."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest

from common import events as ev
from common.bus import Bus
from services.analytics.app import create_app
from services.analytics.settings import Settings


@pytest.fixture
async def analytics(scratch_db, scratch_vhost, aiohttp_client):
    settings = Settings(database_url=scratch_db, amqp_url=scratch_vhost, bus_retry_delay_ms=50,
                        bus_max_retries=1, port=0)
    client = await aiohttp_client(create_app(settings))
    publisher = Bus(scratch_vhost, "conversation")
    await publisher.connect()
    admin = await asyncpg.connect(scratch_db)
    yield Harness(client, publisher, admin, scratch_vhost)
    await admin.close()
    await publisher.close()


class Harness:
    def __init__(self, client, publisher: Bus, db: asyncpg.Connection, vhost: str):
        self.client = client
        self.publisher = publisher
        self.db = db
        self.vhost = vhost

    async def publish(self, *events: ev.Event) -> None:
        for event in events:
            await self.publisher.publish(event)

    async def get(self, path: str, **params) -> tuple[int, dict]:
        resp = await self.client.get(f"/internal/analytics/{path}", params=params)
        return resp.status, await resp.json()

    async def stored(self) -> int:
        return await self.db.fetchval("SELECT count(*) FROM events")

    async def until_stored(self, count: int, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (got := await self.stored()) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{got} of {count} events stored")
            await asyncio.sleep(0.05)


class Scenario:
    """Builds a tenant's events the way the other services publish them."""

    def __init__(self, at: datetime | None = None):
        self.tenant_id = uuid.uuid4()
        self.chatbot_id = uuid.uuid4()
        self.at = at or datetime.now(timezone.utc)

    def start(self, visitor_id: uuid.UUID | None = None, returning: bool = False):
        conversation_id = uuid.uuid4()
        event = ev.ConversationStartedEvent(
            tenant_id=self.tenant_id, chatbot_id=self.chatbot_id, conversation_id=conversation_id,
            visitor_id=visitor_id or uuid.uuid4(), returning_visitor=returning, occurred_at=self.at)
        return conversation_id, event

    def turn(self, conversation_id, question: str, *, answered: bool = True, cost: float = 0.001,
             tokens: tuple[int, int] = (100, 20), ttft: float = 50.0, total: float = 400.0,
             intent: str = "question", cached: bool = False, model: str = "local-extractive"):
        reply_id = uuid.uuid4()
        common = dict(tenant_id=self.tenant_id, chatbot_id=self.chatbot_id, conversation_id=conversation_id,
                      reply_id=reply_id, reply_seq=2, occurred_at=self.at)
        snapshot = ev.ChatbotSnapshot(chatbot_id=self.chatbot_id, name="bot")
        requested = ev.AiReplyRequestedEvent(**common, visitor_message_id=uuid.uuid4(), text=question,
                                             chatbot=snapshot)
        completed = ev.AiReplyCompletedEvent(
            **common, visitor_message_id=requested.visitor_message_id, text=f"answer to {question}",
            citations=[ev.Citation(title="FAQ", url="https://x.example/faq", snippet="s", score=0.8)] if answered else [],
            visitor_intent=intent, provider="local", model=model, answered_from_knowledge=answered,
            usage=ev.Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1], cost_usd=cost, cached=cached),
            timings=ev.Timings(ttft_ms=ttft, total_ms=total))
        return reply_id, [requested, completed]

    def handoff(self, conversation_id, visitor_id=None):
        return ev.HandoffRequestedEvent(tenant_id=self.tenant_id, chatbot_id=self.chatbot_id,
                                        conversation_id=conversation_id, visitor_id=visitor_id or uuid.uuid4(),
                                        occurred_at=self.at)

    def feedback(self, conversation_id, reply_id, rating: str, comment: str = "", at: datetime | None = None):
        return ev.FeedbackGivenEvent(tenant_id=self.tenant_id, chatbot_id=self.chatbot_id,
                                     conversation_id=conversation_id, reply_id=reply_id, rating=rating,
                                     comment=comment, occurred_at=at or self.at)
