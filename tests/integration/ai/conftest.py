"""The ai service against real Postgres and a real RabbitMQ, with loopback providers.

One throwaway database and one throwaway vhost serve the module set (each test uses its own
tenant and conversation ids); every test runs its own app with the service's real consumer
and outbox relay, and watches the visitor's stream the way a gateway does (an exclusive queue
bound to the conversation).
"""
from __future__ import annotations

import asyncio
import uuid

import pytest

from common import events as ev
from common.bus import Bus
from common.db import create_pool
from common.web import DEPS
from services.ai.app import MIGRATIONS, create_app
from services.ai.settings import Settings
from tests.conftest import scratch_database, scratch_vhost_url

PLATFORM_OPENAI_KEY = "sk-platform-openai-000000000001"
PLATFORM_ANTHROPIC_KEY = "sk-ant-platform-000000000001"


@pytest.fixture(scope="session")
def ai_db():
    with scratch_database("ai_test") as url:
        yield url


@pytest.fixture(scope="session")
def ai_vhost():
    with scratch_vhost_url("ai_test") as url:
        yield url


class Visitor:
    """Watches stream events like the gateway holding the visitor's SSE connection."""

    def __init__(self, bus: Bus):
        self.bus = bus
        self.events: dict[uuid.UUID, list[ev.Event]] = {}
        self._done: dict[uuid.UUID, asyncio.Future] = {}
        self._chunked: dict[uuid.UUID, asyncio.Event] = {}

    async def on_event(self, event: ev.Event) -> None:
        self.events.setdefault(event.reply_id, []).append(event)
        if isinstance(event, ev.AiReplyChunkEvent):
            self._chunked.setdefault(event.reply_id, asyncio.Event()).set()
        if isinstance(event, (ev.AiReplyCompletedEvent, ev.AiReplyFailedEvent)):
            future = self._future(event.reply_id)
            if not future.done():
                future.set_result(event)

    def _future(self, reply_id: uuid.UUID) -> asyncio.Future:
        return self._done.setdefault(reply_id, asyncio.get_running_loop().create_future())

    async def watch(self, conversation_id: uuid.UUID) -> None:
        await self.bus.bind_stream(str(conversation_id))

    async def first_chunk(self, reply_id: uuid.UUID, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self._chunked.setdefault(reply_id, asyncio.Event()).wait(), timeout)

    async def outcome(self, reply_id: uuid.UUID, timeout: float = 30.0):
        return await asyncio.wait_for(self._future(reply_id), timeout)

    def streamed_text(self, reply_id: uuid.UUID) -> str:
        """What the visitor's screen shows: chunks since the last (re)start of the reply."""
        text = ""
        for event in self.events.get(reply_id, []):
            if isinstance(event, ev.AiReplyStartedEvent):
                text = ""
            elif isinstance(event, ev.AiReplyChunkEvent):
                assert event.offset == len(text)
                text += event.text
        return text

    def count(self, reply_id: uuid.UUID, cls) -> int:
        return sum(isinstance(e, cls) for e in self.events.get(reply_id, []))


@pytest.fixture
async def ai(ai_db, ai_vhost, aiohttp_client, openai_fake, anthropic_fake, knowledge_fake):
    """The running ai app (client), its deps, a visitor watching streams, and the fakes."""
    pool = await create_pool(ai_db, migrations=MIGRATIONS)
    bus = Bus(ai_vhost, "ai")
    await bus.connect()
    watcher_bus = Bus(ai_vhost, "gateway")
    await watcher_bus.connect()
    visitor = Visitor(watcher_bus)
    await watcher_bus.open_stream(visitor.on_event)
    settings = Settings(database_url=ai_db, amqp_url=ai_vhost, openai_api_key=PLATFORM_OPENAI_KEY,
                        openai_base_url=openai_fake.url + "/v1", anthropic_api_key=PLATFORM_ANTHROPIC_KEY,
                        anthropic_base_url=anthropic_fake.url, knowledge_url=knowledge_fake.url,
                        secret_key="integration-secret", first_token_timeout_s=2, retry_backoff_s=0.01,
                        provider_retries=1, reply_deadline_s=50, chunk_interval_ms=0,
                        allow_private_provider_urls=True)  # the stand-in providers are on loopback
    client = await aiohttp_client(create_app(settings, pool=pool, bus=bus))
    harness = Harness(client=client, deps=client.app[DEPS], visitor=visitor, bus=bus, pool=pool,
                      openai=openai_fake, anthropic=anthropic_fake, knowledge=knowledge_fake)
    yield harness
    await client.close()
    await watcher_bus.close()
    await bus.close()
    await pool.close()


class Harness:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def request(self, text: str, *, tenant_id=None, conversation_id=None, history=(), **bot) -> ev.AiReplyRequestedEvent:
        chatbot = ev.ChatbotSnapshot(chatbot_id=bot.pop("chatbot_id", None) or uuid.uuid4(), name="Ava",
                                     system_prompt="You help customers of Acme Bikes.",
                                     greeting="Hi, I'm Ava!",
                                     fallback_answer="Sorry, our documents don't cover that.", **bot)
        return ev.AiReplyRequestedEvent(
            tenant_id=tenant_id or uuid.uuid4(), chatbot_id=chatbot.chatbot_id,
            conversation_id=conversation_id or uuid.uuid4(), reply_id=uuid.uuid4(), reply_seq=2,
            visitor_message_id=uuid.uuid4(), text=text, history=list(history), chatbot=chatbot)

    async def ask(self, event: ev.AiReplyRequestedEvent, *, via_bus: bool = True):
        """Send the request the way conversation does (or run the handler directly), then wait
        for the visitor's stream to end."""
        await self.visitor.watch(event.conversation_id)
        if via_bus:
            await self.bus.publish(event)
        else:
            from services.ai.service import generate_reply
            await generate_reply(event, self.deps)
        return await self.visitor.outcome(event.reply_id)
