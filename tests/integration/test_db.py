"""Migrations, the inbox and the outbox against a real Postgres (a throwaway database)."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from common import events as ev
from common.bus import Bus
from common.db import MigrationError, OutboxRelay, apply_migrations, claim, create_pool, enqueue


@pytest.fixture
def migrations(tmp_path):
    (tmp_path / "001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    return tmp_path


async def test_migrations_apply_once_in_order_and_an_edited_applied_one_stops_startup(scratch_db, migrations):
    conn = await asyncpg.connect(scratch_db)
    try:
        first = await apply_migrations(conn, migrations)
        assert first == ["common/001_bus.sql", "service/001_things.sql"]
        (migrations / "002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
        assert await apply_migrations(conn, migrations) == ["service/002_more.sql"]
        assert await apply_migrations(conn, migrations) == []
        (migrations / "001_things.sql").write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        with pytest.raises(MigrationError, match="001_things.sql was edited"):
            await apply_migrations(conn, migrations)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_half_applied(scratch_db, migrations):
    (migrations / "002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(scratch_db)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_migrations(conn, migrations)
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert "service/002_broken.sql" not in {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    finally:
        await conn.close()


async def test_claim_lets_each_event_through_once(scratch_db, migrations):
    pool = await create_pool(scratch_db, migrations=migrations)
    event = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
    try:
        async with pool.acquire() as conn, conn.transaction():
            assert await claim(conn, event)
        async with pool.acquire() as conn, conn.transaction():
            assert not await claim(conn, event)
    finally:
        await pool.close()


async def test_outbox_publishes_committed_events_and_never_rolled_back_ones(scratch_db, scratch_vhost, migrations):
    pool = await create_pool(scratch_db, migrations=migrations)
    bus = Bus(scratch_vhost, "gateway")
    await bus.connect()
    consumer = Bus(scratch_vhost, "analytics")
    await consumer.connect()
    got = []

    async def record(event):
        got.append(event.event_id)

    consumer.subscribe(ev.ChatbotDeletedEvent, record)
    await consumer.start_consuming()
    relay = OutboxRelay(pool, bus, interval=30)  # only NOTIFY can wake it this fast
    await relay.start()
    try:
        committed = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
        rolled_back = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await enqueue(conn, rolled_back)
                    raise RuntimeError("the handler failed")
            async with conn.transaction():
                await enqueue(conn, committed)
        for _ in range(200):
            if got and await pool.fetchval("SELECT count(*) FROM outbox") == 0:
                break
            await asyncio.sleep(0.02)
        assert got == [committed.event_id]
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # deleted once confirmed
    finally:
        await relay.stop()
        await consumer.close()
        await bus.close()
        await pool.close()


async def test_outbox_rows_survive_a_broker_outage_and_go_out_later(scratch_db, scratch_vhost, migrations):
    pool = await create_pool(scratch_db, migrations=migrations)
    event = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, event)  # written while no relay or broker connection exists
        bus = Bus(scratch_vhost, "gateway")
        await bus.connect()
        relay = OutboxRelay(pool, bus, interval=0.05)
        await relay.start()
        for _ in range(200):
            if await pool.fetchval("SELECT count(*) FROM outbox") == 0:
                break
            await asyncio.sleep(0.02)
        await relay.stop()
        channel = await bus.connection.channel()
        queue = await channel.declare_queue("ChatbotDeletedEvent.analytics", durable=True)
        message = await queue.get(fail=False)
        assert message is not None and str(event.event_id) in message.body.decode()
        await bus.close()
    finally:
        await pool.close()
