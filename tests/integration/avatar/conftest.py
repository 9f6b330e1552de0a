"""The avatar app against a throwaway Postgres database and a throwaway RabbitMQ vhost."""
from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from common.bus import Bus
from common.db import create_pool
from services.avatar.app import MIGRATIONS, create_app
from services.avatar.settings import Settings
from tests.integration.avatar.avatar_env import env


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def make_database():
    """Creates throwaway databases (never the avatarchat_* ones) and drops them afterwards."""
    admin_url = env("POSTGRES_URL")
    created: list[str] = []

    async def make() -> str:
        name = f"avatar_it_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        created.append(name)
        return _with_database(admin_url, name)

    yield make
    admin = await asyncpg.connect(admin_url)
    try:
        for name in created:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(make_database):
    return await make_database()


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
