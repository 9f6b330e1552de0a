"""The avatar app against a throwaway Postgres database and a throwaway RabbitMQ vhost."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.bus import Bus
from common.db import create_pool
from services.avatar.app import MIGRATIONS, create_app
from services.avatar.settings import Settings


@pytest.fixture
def database_url(scratch_db):
    return scratch_db


@pytest.fixture
async def pool(database_url):
    pool = await create_pool(database_url, migrations=MIGRATIONS)
    yield pool
    await pool.close()


@pytest.fixture
async def bus(scratch_vhost):
    # a vhost of its own: the shared test vhost's queues belong to the e2e stack
    bus = Bus(scratch_vhost, "avatar")
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
def storage_dir(tmp_path) -> Path:
    return tmp_path / "avatars"


@pytest.fixture
def settings(database_url, storage_dir, scratch_vhost) -> Settings:
    return Settings(database_url=database_url, storage_dir=storage_dir, amqp_url=scratch_vhost,
                    max_bytes=1024 * 1024, max_avatars_per_tenant=5)


@pytest.fixture
async def client(settings, pool, bus, aiohttp_client):
    # aiohttp_client last: the app stops before the pool and bus it was given are closed
    return await aiohttp_client(create_app(settings, pool=pool, bus=bus))
