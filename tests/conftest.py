"""Shared fixtures. `make test` sources .data/test.env (written by scripts/infra.py), so the
tests find a real Postgres superuser URL (POSTGRES_URL) and a RabbitMQ URL (AMQP_URL)."""
from __future__ import annotations

import pytest

from tests.support.infra import (ROOT, _run, db_url, require_env, scratch_database,  # noqa: F401
                                 scratch_vhost_url)
# the real supervisord stack, and nginx in front of it, shared by every suite that needs them
# (one per session)
from tests.support.stack import api, bot, site, stack  # noqa: F401
from scripts.loopback import FakeKnowledge, FakeProvider, anthropic_app, knowledge_app, openai_app


@pytest.fixture
def scratch_db():
    with scratch_database() as url:
        yield url


@pytest.fixture
def scratch_vhost():
    with scratch_vhost_url() as url:
        yield url


# --- loopback stand-ins for third-party services we don't run (they speak the real wire formats)

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
