import uuid

import pytest

from tests.unit.ai.ai_fakes import FakeKnowledge, FakeProvider, anthropic_app, knowledge_app, openai_app
from common.events import ChatbotSnapshot


@pytest.fixture
async def openai_fake(aiohttp_server):
    fake = FakeProvider()
    fake.server = await aiohttp_server(openai_app(fake), host="127.0.0.1")
    yield fake
    fake.release.set()


@pytest.fixture
async def anthropic_fake(aiohttp_server):
    fake = FakeProvider()
    fake.server = await aiohttp_server(anthropic_app(fake), host="127.0.0.1")
    yield fake
    fake.release.set()


@pytest.fixture
async def knowledge_fake(aiohttp_server):
    fake = FakeKnowledge()
    fake.server = await aiohttp_server(knowledge_app(fake), host="127.0.0.1")
    yield fake


@pytest.fixture
def bot():
    return ChatbotSnapshot(chatbot_id=uuid.uuid4(), name="Ava", system_prompt="You help customers of Acme Bikes.",
                           tone="warm", greeting="Hi, I'm Ava from Acme Bikes!",
                           fallback_answer="Sorry, I couldn't find that in our documents.")
