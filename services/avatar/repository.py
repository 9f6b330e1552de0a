"""All SQL of the avatar service."""
from __future__ import annotations

import uuid

import asyncpg


async def create_avatar(conn: asyncpg.Connection, avatar_id: uuid.UUID, tenant_id: uuid.UUID, name: str,
                        filename: str, size_bytes: int, sha256: str, info: dict,
                        animation_map: dict) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO avatars (id, tenant_id, name, filename, size_bytes, sha256, info, animation_map) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *",
        avatar_id, tenant_id, name, filename, size_bytes, sha256, info, animation_map)


async def count_avatars(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM avatars WHERE tenant_id = $1", tenant_id)


async def get_avatar(conn: asyncpg.Connection, tenant_id: uuid.UUID | None,
                     avatar_id: uuid.UUID) -> asyncpg.Record | None:
    """``tenant_id`` None: any tenant's (the public model route, where the id is the secret)."""
    if tenant_id is None:
        return await conn.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    return await conn.fetchrow("SELECT * FROM avatars WHERE id = $1 AND tenant_id = $2", avatar_id, tenant_id)


async def list_avatars(conn: asyncpg.Connection, tenant_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM avatars WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2", tenant_id, limit)


async def lock_avatar(conn: asyncpg.Connection, tenant_id: uuid.UUID, avatar_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM avatars WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                               avatar_id, tenant_id)


async def delete_avatar(conn: asyncpg.Connection, tenant_id: uuid.UUID, avatar_id: uuid.UUID) -> bool:
    status = await conn.execute("DELETE FROM avatars WHERE id = $1 AND tenant_id = $2", avatar_id, tenant_id)
    return status.endswith(" 1")


async def chatbots_using(conn: asyncpg.Connection, avatar_id: uuid.UUID) -> list[uuid.UUID]:
    return [r["chatbot_id"] for r in await conn.fetch(
        "SELECT chatbot_id FROM chatbot_avatars WHERE avatar_id = $1 ORDER BY chatbot_id", avatar_id)]


async def set_animation_map(conn: asyncpg.Connection, tenant_id: uuid.UUID, avatar_id: uuid.UUID,
                            animation_map: dict) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE avatars SET animation_map = $3, updated_at = now() WHERE id = $1 AND tenant_id = $2 RETURNING *",
        avatar_id, tenant_id, animation_map)


async def set_chatbot_animation_map(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                                    avatar_id: uuid.UUID, animation_map: dict) -> None:
    await conn.execute(
        "INSERT INTO chatbot_animation_maps (chatbot_id, avatar_id, tenant_id, animation_map) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (chatbot_id, avatar_id) "
        "DO UPDATE SET animation_map = EXCLUDED.animation_map, updated_at = now()",
        chatbot_id, avatar_id, tenant_id, animation_map)


async def chatbot_animation_maps(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                                 avatar_id: uuid.UUID) -> dict[uuid.UUID, dict]:
    rows = await conn.fetch(
        "SELECT chatbot_id, animation_map FROM chatbot_animation_maps WHERE avatar_id = $1 AND tenant_id = $2",
        avatar_id, tenant_id)
    return {r["chatbot_id"]: r["animation_map"] for r in rows}


async def get_chatbot_avatar(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                             chatbot_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM chatbot_avatars WHERE chatbot_id = $1 AND tenant_id = $2", chatbot_id, tenant_id)


async def set_chatbot_avatar(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                             avatar_id: uuid.UUID | None) -> bool:
    """False if the chatbot id is already registered to another tenant."""
    row = await conn.fetchrow(
        "INSERT INTO chatbot_avatars (chatbot_id, tenant_id, avatar_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (chatbot_id) DO UPDATE SET avatar_id = EXCLUDED.avatar_id, updated_at = now() "
        "WHERE chatbot_avatars.tenant_id = EXCLUDED.tenant_id RETURNING 1",
        chatbot_id, tenant_id, avatar_id)
    return row is not None


async def animation_for_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                                chatbot_id: uuid.UUID) -> asyncpg.Record | None:
    """The chatbot's avatar with its avatar-wide and chatbot maps; None for the default avatar."""
    return await conn.fetchrow(
        "SELECT a.id AS avatar_id, a.animation_map, m.animation_map AS chatbot_map "
        "FROM chatbot_avatars c JOIN avatars a ON a.id = c.avatar_id "
        "LEFT JOIN chatbot_animation_maps m ON m.chatbot_id = c.chatbot_id AND m.avatar_id = a.id "
        "WHERE c.chatbot_id = $1 AND c.tenant_id = $2", chatbot_id, tenant_id)


async def record_selection(conn: asyncpg.Connection, reply_id: uuid.UUID, tenant_id: uuid.UUID,
                           chatbot_id: uuid.UUID, avatar_id: uuid.UUID | None, behaviour: str, clip: str) -> None:
    await conn.execute(
        "INSERT INTO animation_selections (reply_id, tenant_id, chatbot_id, avatar_id, behaviour, clip) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        reply_id, tenant_id, chatbot_id, avatar_id, behaviour, clip)


async def delete_chatbot_animation_map(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                                       avatar_id: uuid.UUID) -> None:
    await conn.execute(
        "DELETE FROM chatbot_animation_maps WHERE chatbot_id = $1 AND avatar_id = $2 AND tenant_id = $3",
        chatbot_id, avatar_id, tenant_id)


async def advisory_lock_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Serialise one tenant's uploads within the caller's transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(tenant_id))


async def forget_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM chatbot_animation_maps WHERE chatbot_id = $1 AND tenant_id = $2",
                       chatbot_id, tenant_id)
    await conn.execute("DELETE FROM chatbot_avatars WHERE chatbot_id = $1 AND tenant_id = $2", chatbot_id, tenant_id)


# --- erasure (chatbot or tenant deleted, a visitor's data erased) ------------------------------

async def delete_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    await forget_chatbot(conn, tenant_id, chatbot_id)
    await conn.execute("DELETE FROM animation_selections WHERE chatbot_id = $1 AND tenant_id = $2",
                       chatbot_id, tenant_id)


async def delete_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    """Every row of the tenant; returns the ids of its avatars, whose files go too."""
    await conn.execute("DELETE FROM animation_selections WHERE tenant_id = $1", tenant_id)
    await conn.execute("DELETE FROM chatbot_animation_maps WHERE tenant_id = $1", tenant_id)
    await conn.execute("DELETE FROM chatbot_avatars WHERE tenant_id = $1", tenant_id)
    return [r["id"] for r in await conn.fetch("DELETE FROM avatars WHERE tenant_id = $1 RETURNING id", tenant_id)]


async def delete_selections(conn: asyncpg.Connection, tenant_id: uuid.UUID, reply_ids: list[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM animation_selections WHERE tenant_id = $1 AND reply_id = ANY($2::uuid[])",
                       tenant_id, reply_ids)
