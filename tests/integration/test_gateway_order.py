"""The per-conversation sequence the gateway gives accepted messages (real Postgres)."""
from __future__ import annotations

import asyncio
import uuid

from common.db import create_pool
from services.gateway import repository
from services.gateway.app import MIGRATIONS


async def _seq(pool, conversation_id, message_id) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await repository.message_seq(conn, conversation_id, message_id)


async def test_a_retried_message_keeps_its_number_and_leaves_no_gap(scratch_db):
    pool = await create_pool(scratch_db, migrations=MIGRATIONS)
    try:
        conversation, other = uuid.uuid4(), uuid.uuid4()
        first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        assert await _seq(pool, conversation, first) == 1
        # the publish failed or the 202 was lost: the visitor's widget sends the message again
        assert await _seq(pool, conversation, first) == 1
        assert await _seq(pool, conversation, second) == 2
        # two retries of one message racing on two gateway replicas take one number between them
        assert await asyncio.gather(*(_seq(pool, conversation, third) for _ in range(4))) == [3, 3, 3, 3]
        assert await _seq(pool, conversation, uuid.uuid4()) == 4
        # conversations count on their own
        assert await _seq(pool, other, uuid.uuid4()) == 1
    finally:
        await pool.close()
