"""All SQL of the gateway."""
from __future__ import annotations

import uuid

import asyncpg


async def create_tenant(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    return await conn.fetchrow("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING *",
                               uuid.uuid4(), name)


async def create_api_key(conn: asyncpg.Connection, key_id: str, tenant_id: uuid.UUID,
                         secret_hash: bytes, scope: str, name: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO api_keys (id, tenant_id, secret_hash, scope, name) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id, tenant_id, scope, name, created_at, revoked_at",
        key_id, tenant_id, secret_hash, scope, name)


async def get_api_key(conn: asyncpg.Connection, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)


async def create_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, embed_id: str, name: str,
                         config: dict) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO chatbots (id, tenant_id, embed_id, name, config) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING *", uuid.uuid4(), tenant_id, embed_id, name, config)


async def get_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM chatbots WHERE id = $1 AND tenant_id = $2",
                               chatbot_id, tenant_id)


async def list_chatbots(conn: asyncpg.Connection, tenant_id: uuid.UUID, limit: int):
    return await conn.fetch(
        "SELECT * FROM chatbots WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2", tenant_id, limit)


async def chatbot_by_embed_id(conn: asyncpg.Connection, embed_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM chatbots WHERE embed_id = $1", embed_id)
