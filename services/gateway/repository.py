"""All SQL of the gateway."""
from __future__ import annotations

import uuid
from datetime import date, datetime

import asyncpg

TENANT_COLUMNS = "id, name, max_chatbots, max_documents, monthly_message_quota, created_at, updated_at"


async def create_tenant(conn: asyncpg.Connection, name: str, limits: dict | None = None) -> asyncpg.Record:
    limits = limits or {}
    return await conn.fetchrow(
        f"INSERT INTO tenants (id, name, max_chatbots, max_documents, monthly_message_quota) "
        f"VALUES ($1, $2, coalesce($3, 10), coalesce($4, 500), coalesce($5, 10000)) RETURNING {TENANT_COLUMNS}",
        uuid.uuid4(), name, limits.get("max_chatbots"), limits.get("max_documents"),
        limits.get("monthly_message_quota"))


async def get_tenant(conn, tenant_id: uuid.UUID, *, lock: bool = False):
    return await conn.fetchrow(f"SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1"
                               + (" FOR UPDATE" if lock else ""), tenant_id)


async def list_tenants(conn, after: tuple[datetime, uuid.UUID] | None, limit: int, *, name: str | None = None,
                       newest_first: bool = False):
    """Keyset-paginated on (created_at, id), either way; ``name``: contains, any case."""
    pattern = None if not name else "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    before_or_after, direction = ("<", "DESC") if newest_first else (">", "ASC")
    return await conn.fetch(
        f"SELECT {TENANT_COLUMNS} FROM tenants WHERE ($1::timestamptz IS NULL OR (created_at, id) {before_or_after} ($1, $2)) "
        f"AND ($4::text IS NULL OR name ILIKE $4) ORDER BY created_at {direction}, id {direction} LIMIT $3",
        after[0] if after else None, after[1] if after else None, limit, pattern)


async def update_tenant(conn, tenant_id: uuid.UUID, *, name: str | None = None, limits: dict | None = None):
    limits = limits or {}
    return await conn.fetchrow(
        f"UPDATE tenants SET name = coalesce($2, name), max_chatbots = coalesce($3, max_chatbots), "
        f"max_documents = coalesce($4, max_documents), "
        f"monthly_message_quota = coalesce($5, monthly_message_quota), updated_at = now() "
        f"WHERE id = $1 RETURNING {TENANT_COLUMNS}",
        tenant_id, name, limits.get("max_chatbots"), limits.get("max_documents"), limits.get("monthly_message_quota"))


async def create_api_key(conn: asyncpg.Connection, key_id: str, tenant_id: uuid.UUID,
                         secret_hash: bytes, scope: str, name: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO api_keys (id, tenant_id, secret_hash, scope, name) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id, tenant_id, scope, name, created_at, revoked_at",
        key_id, tenant_id, secret_hash, scope, name)


async def count_active_api_keys(conn, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL", tenant_id)


async def get_api_key(conn: asyncpg.Connection, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)


async def list_api_keys(conn, tenant_id: uuid.UUID, after, limit: int):
    return await conn.fetch(
        "SELECT id, tenant_id, scope, name, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 "
        "AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) ORDER BY created_at, id LIMIT $4",
        tenant_id, after[0] if after else None, after[1] if after else None, limit)


async def revoke_api_key(conn, tenant_id: uuid.UUID, key_id: str):
    return await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND tenant_id = $2 "
        "RETURNING id, tenant_id, scope, name, created_at, revoked_at", key_id, tenant_id)


async def create_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, embed_id: str, name: str,
                         config: dict, *, chatbot_id: uuid.UUID | None = None) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO chatbots (id, tenant_id, embed_id, name, config) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING *", chatbot_id or uuid.uuid4(), tenant_id, embed_id, name, config)


async def get_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, *, lock: bool = False):
    return await conn.fetchrow("SELECT * FROM chatbots WHERE id = $1 AND tenant_id = $2"
                               + (" FOR UPDATE" if lock else ""), chatbot_id, tenant_id)


async def count_chatbots(conn, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM chatbots WHERE tenant_id = $1", tenant_id)


async def list_chatbots(conn: asyncpg.Connection, tenant_id: uuid.UUID, after, limit: int):
    return await conn.fetch(
        "SELECT * FROM chatbots WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) "
        "ORDER BY created_at, id LIMIT $4", tenant_id, after[0] if after else None, after[1] if after else None, limit)


async def update_chatbot(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, name: str, config: dict):
    return await conn.fetchrow(
        "UPDATE chatbots SET name = $3, config = $4, updated_at = now() WHERE id = $1 AND tenant_id = $2 RETURNING *",
        chatbot_id, tenant_id, name, config)


async def delete_chatbot(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> bool:
    return await conn.execute("DELETE FROM chatbots WHERE id = $1 AND tenant_id = $2",
                              chatbot_id, tenant_id) != "DELETE 0"


async def chatbot_by_embed_id(conn: asyncpg.Connection, embed_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM chatbots WHERE embed_id = $1", embed_id)


async def count_message(conn, tenant_id: uuid.UUID, month: date, quota: int, message_id: uuid.UUID) -> bool:
    """Count one message against the month's quota, once per message id (a retry is free);
    False (and nothing counted) when the quota is used up."""
    async with conn.transaction():
        first = await conn.fetchval(
            "INSERT INTO counted_messages (message_id, tenant_id, month) VALUES ($1, $2, $3) "
            "ON CONFLICT (message_id) DO NOTHING RETURNING true", message_id, tenant_id, month)
        if not first:
            return True
        used = await conn.fetchval(
            "INSERT INTO monthly_usage AS u (tenant_id, month, messages) VALUES ($1, $2, 1) "
            "ON CONFLICT (tenant_id, month) DO UPDATE SET messages = u.messages + 1 WHERE u.messages < $3 "
            "RETURNING messages", tenant_id, month, quota)
        if used is None or used > quota:
            # undo the id too, so the message can count once the quota allows it
            await conn.execute("DELETE FROM counted_messages WHERE message_id = $1", message_id)
            return False
        return True


async def uncount_message(conn, tenant_id: uuid.UUID, month: date, message_id: uuid.UUID) -> None:
    async with conn.transaction():
        if await conn.fetchval("DELETE FROM counted_messages WHERE message_id = $1 RETURNING true", message_id):
            await conn.execute("UPDATE monthly_usage SET messages = messages - 1 WHERE tenant_id = $1 "
                               "AND month = $2 AND messages > 0", tenant_id, month)


async def purge_counted_messages(conn, before: date) -> None:
    await conn.execute("DELETE FROM counted_messages WHERE month < $1", before)


# --- visitor sessions ------------------------------------------------------------------------

async def start_visitor_session(conn, *, conversation_id: uuid.UUID, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                                visitor_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO visitor_sessions (conversation_id, tenant_id, chatbot_id, visitor_id) "
                       "VALUES ($1, $2, $3, $4)", conversation_id, tenant_id, chatbot_id, visitor_id)


async def visitor_session(conn, conversation_id: uuid.UUID):
    return await conn.fetchrow("SELECT *, extract(epoch FROM now() - started_at)::float8 AS age_s "
                               "FROM visitor_sessions WHERE conversation_id = $1", conversation_id)


async def revoke_visitor_session(conn, tenant_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
    return await conn.fetchval(
        "UPDATE visitor_sessions SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE conversation_id = $1 AND tenant_id = $2 RETURNING true", conversation_id, tenant_id) or False


async def purge_visitor_sessions(conn, older_than_s: float) -> None:
    await conn.execute("DELETE FROM visitor_sessions WHERE started_at < now() - make_interval(secs => $1)",
                       older_than_s)


async def message_seq(conn, conversation_id: uuid.UUID, message_id: uuid.UUID) -> int:
    """The message's place in its conversation: the next number the first time, the same
    number on every retry. The conversation's counter row is locked while deciding, so two
    retries racing each other cannot both take a number."""
    await conn.execute("INSERT INTO conversation_sequences (conversation_id, last_seq) VALUES ($1, 0) "
                       "ON CONFLICT (conversation_id) DO NOTHING", conversation_id)
    last = await conn.fetchval("SELECT last_seq FROM conversation_sequences WHERE conversation_id = $1 FOR UPDATE",
                               conversation_id)
    seq = await conn.fetchval("SELECT seq FROM message_seqs WHERE message_id = $1", message_id)
    if seq is not None:
        return seq
    await conn.execute("UPDATE conversation_sequences SET last_seq = $2, updated_at = now() "
                       "WHERE conversation_id = $1", conversation_id, last + 1)
    await conn.execute("INSERT INTO message_seqs (message_id, conversation_id, seq) VALUES ($1, $2, $3)",
                       message_id, conversation_id, last + 1)
    return last + 1


async def purge_message_seqs(conn, older_than_days: int = 30) -> None:
    """A conversation quiet for a month starts counting again (conversation accepts that)."""
    await conn.execute("DELETE FROM conversation_sequences WHERE updated_at < now() - make_interval(days => $1)",
                       older_than_days)
    await conn.execute("DELETE FROM message_seqs WHERE created_at < now() - make_interval(days => $1)",
                       older_than_days)


async def messages_this_month(conn, tenant_id: uuid.UUID, month: date) -> int:
    return await conn.fetchval("SELECT messages FROM monthly_usage WHERE tenant_id = $1 AND month = $2",
                               tenant_id, month) or 0


# --- erasure ---------------------------------------------------------------------------------

async def delete_tenant(conn, tenant_id: uuid.UUID) -> asyncpg.Record | None:
    """The tenant and, by cascade, its keys, chatbots, usage, counted messages, visitor
    sessions, console memberships, sessions, invites and reset links, and the message counters
    of its widget conversations; its console users who belong to no other tenant go too.
    Rate-limit cells hold no tenant id and expire on their own."""
    await conn.execute(
        "DELETE FROM users u WHERE u.id IN (SELECT user_id FROM memberships WHERE tenant_id = $1) "
        "AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.tenant_id <> $1)", tenant_id)
    rows = await conn.fetch("SELECT conversation_id FROM visitor_sessions WHERE tenant_id = $1", tenant_id)
    await delete_message_seqs(conn, [r["conversation_id"] for r in rows])
    return await conn.fetchrow(f"DELETE FROM tenants WHERE id = $1 RETURNING {TENANT_COLUMNS}", tenant_id)


async def delete_visitor_sessions(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, visitor_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM visitor_sessions WHERE tenant_id = $1 AND chatbot_id = $2 AND visitor_id = $3",
                       tenant_id, chatbot_id, visitor_id)


async def delete_chatbot_sessions(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    """A deleted chatbot's visitor sessions, and the message counters of those conversations.
    (An API client's conversation has no session: its counter, a bare number, goes after 30
    quiet days with purge_message_seqs.)"""
    rows = await conn.fetch("DELETE FROM visitor_sessions WHERE tenant_id = $1 AND chatbot_id = $2 "
                            "RETURNING conversation_id", tenant_id, chatbot_id)
    await delete_message_seqs(conn, [r["conversation_id"] for r in rows])


async def delete_message_seqs(conn, conversation_ids: list[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM conversation_sequences WHERE conversation_id = ANY($1::uuid[])", conversation_ids)
    await conn.execute("DELETE FROM message_seqs WHERE conversation_id = ANY($1::uuid[])", conversation_ids)


async def erase_messages(conn, tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID],
                         message_ids: list[uuid.UUID]) -> None:
    """An erased visitor's message counters and the retry guards of their messages (the
    month's count stays: they were sent)."""
    await conn.execute("DELETE FROM counted_messages WHERE tenant_id = $1 AND message_id = ANY($2::uuid[])",
                       tenant_id, message_ids)
    await delete_message_seqs(conn, conversation_ids)


# --- rate limits (generic cell rate algorithm, services/gateway/ratelimit.py) -----------------

async def admit(pool, cell: str, interval_s: float, period_s: float) -> float | None:
    """Advance the cell's theoretical arrival time if that stays within the period: the
    seconds it is ahead of now, or None when the request is refused."""
    return await pool.fetchval(
        """INSERT INTO rate_limits AS r (key, tat) VALUES ($1, now() + make_interval(secs => $2))
           ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, now()) + make_interval(secs => $2)
           WHERE greatest(r.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $3)
           RETURNING extract(epoch FROM tat - now())::float8""", cell, interval_s, period_s)


async def seconds_ahead(pool, cell: str) -> float:
    return await pool.fetchval("SELECT extract(epoch FROM tat - now())::float8 FROM rate_limits WHERE key = $1",
                               cell) or 0.0


async def give_back(pool, cell: str, interval_s: float) -> None:
    """Undo one admitted request of a cell (a sign-in that succeeded was no failure)."""
    await pool.execute("UPDATE rate_limits SET tat = tat - make_interval(secs => $2) WHERE key = $1",
                       cell, interval_s)


async def purge_rate_limits(pool) -> None:
    await pool.execute("DELETE FROM rate_limits WHERE tat < now()")


async def forget_rate_limits(conn, key: str) -> None:
    await conn.execute("DELETE FROM rate_limits WHERE key LIKE '%:' || $1", key)


# --- console users, sessions, invites and reset links (services/gateway/console_routes.py) ---

USER_COLUMNS = "u.id, u.email, u.created_at, u.last_login_at"


async def user_by_email(conn, email: str):
    return await conn.fetchrow("SELECT * FROM users WHERE email = $1", email.lower())


async def get_user(conn, user_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM users WHERE id = $1", user_id)


async def create_user(conn, email: str, password_hash: str):
    return await conn.fetchrow("INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3) RETURNING *",
                               uuid.uuid4(), email.lower(), password_hash)


async def set_password(conn, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def user_logged_in(conn, user_id: uuid.UUID) -> None:
    await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", user_id)


async def user_tenants(conn, user_id: uuid.UUID):
    """Every tenant the user belongs to, the earliest joined first."""
    return await conn.fetch(
        "SELECT t.id, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id "
        "WHERE m.user_id = $1 ORDER BY m.created_at, t.id", user_id)


async def add_membership(conn, user_id: uuid.UUID, tenant_id: uuid.UUID, role: str) -> None:
    """A user already in the tenant keeps the role they have."""
    await conn.execute("INSERT INTO memberships (user_id, tenant_id, role) VALUES ($1, $2, $3) "
                       "ON CONFLICT (user_id, tenant_id) DO NOTHING", user_id, tenant_id, role)


async def tenant_users(conn, tenant_id: uuid.UUID, user_id: uuid.UUID | None = None):
    return await conn.fetch(
        f"SELECT {USER_COLUMNS}, m.role, m.created_at AS joined_at FROM memberships m JOIN users u "
        "ON u.id = m.user_id WHERE m.tenant_id = $1 AND ($2::uuid IS NULL OR u.id = $2) "
        "ORDER BY m.created_at, u.id", tenant_id, user_id)


async def count_owners(conn, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'",
                               tenant_id)


async def set_role(conn, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    await conn.execute("UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2",
                       tenant_id, user_id, role)


async def remove_membership(conn, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id)
    await conn.execute("UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND tenant_id = $2 "
                       "AND revoked_at IS NULL", user_id, tenant_id)


async def other_memberships(conn, user_id: uuid.UUID, tenant_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM memberships WHERE user_id = $1 AND tenant_id <> $2",
                               user_id, tenant_id)


async def create_console_session(conn, token_hash: bytes, csrf_token: str, *, user_id: uuid.UUID | None,
                                 tenant_id: uuid.UUID | None):
    return await conn.fetchrow(
        "INSERT INTO console_sessions (id, token_hash, user_id, is_admin, tenant_id, csrf_token) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING *", uuid.uuid4(), token_hash, user_id, user_id is None,
        tenant_id, csrf_token)


async def get_console_session(conn, token_hash: bytes):
    """The session with its user's email and role in its current tenant, and how long it has
    been idle and alive (by the database's clock, like every other expiry here)."""
    return await conn.fetchrow(
        "SELECT s.*, u.email, m.role, extract(epoch FROM now() - s.last_seen_at)::float8 AS idle_s, "
        "extract(epoch FROM now() - s.created_at)::float8 AS age_s FROM console_sessions s "
        "LEFT JOIN users u ON u.id = s.user_id "
        "LEFT JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id "
        "WHERE s.token_hash = $1", token_hash)


async def touch_console_session(conn, session_id: uuid.UUID):
    return await conn.fetchval("UPDATE console_sessions SET last_seen_at = now() WHERE id = $1 "
                               "RETURNING last_seen_at", session_id)


async def switch_session_tenant(conn, session_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    await conn.execute("UPDATE console_sessions SET tenant_id = $2 WHERE id = $1", session_id, tenant_id)


async def delete_console_session(conn, session_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE id = $1", session_id)


async def revoke_user_sessions(conn, user_id: uuid.UUID, *, keep: uuid.UUID | None = None) -> None:
    await conn.execute("UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL "
                       "AND id IS DISTINCT FROM $2", user_id, keep)


async def purge_console_sessions(conn, idle_s: float, max_age_s: float) -> None:
    await conn.execute(
        "DELETE FROM console_sessions WHERE revoked_at IS NOT NULL OR last_seen_at < now() - make_interval(secs => $1) "
        "OR created_at < now() - make_interval(secs => $2)", idle_s, max_age_s)


async def create_invite(conn, token_hash: bytes, tenant_id: uuid.UUID, email: str, role: str, ttl_s: float,
                        created_by: uuid.UUID | None):
    return await conn.fetchrow(
        "INSERT INTO invites (id, token_hash, tenant_id, email, role, expires_at, created_by) "
        "VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7) RETURNING *",
        uuid.uuid4(), token_hash, tenant_id, email.lower(), role, ttl_s, created_by)


# an invite with its tenant's name, a reset link with its user's email
_LINKS = {"invite": ("invites", "t.name AS tenant_name", "JOIN tenants t ON t.id = l.tenant_id"),
          "reset": ("password_resets", "u.email", "JOIN users u ON u.id = l.user_id")}


async def link_by_token(conn, kind: str, token_hash: bytes, *, lock: bool = False):
    """An invite or a reset link (``kind``) by its token's hash, with whether it has expired."""
    table, extra, join = _LINKS[kind]
    return await conn.fetchrow(
        f"SELECT l.*, {extra}, l.expires_at <= now() AS expired FROM {table} l {join} WHERE l.token_hash = $1"
        + (" FOR UPDATE OF l" if lock else ""), token_hash)


async def use_link(conn, kind: str, link_id: uuid.UUID) -> None:
    await conn.execute(f"UPDATE {_LINKS[kind][0]} SET used_at = now() WHERE id = $1", link_id)


async def pending_invites(conn, tenant_id: uuid.UUID):
    return await conn.fetch("SELECT * FROM invites WHERE tenant_id = $1 AND used_at IS NULL AND expires_at > now() "
                            "ORDER BY created_at, id", tenant_id)


async def delete_invite(conn, tenant_id: uuid.UUID, invite_id: uuid.UUID) -> bool:
    return await conn.execute("DELETE FROM invites WHERE id = $1 AND tenant_id = $2",
                              invite_id, tenant_id) != "DELETE 0"


async def create_password_reset(conn, token_hash: bytes, user_id: uuid.UUID, tenant_id: uuid.UUID, ttl_s: float,
                                created_by: uuid.UUID | None):
    return await conn.fetchrow(
        "INSERT INTO password_resets (id, token_hash, user_id, tenant_id, expires_at, created_by) "
        "VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5), $6) RETURNING *",
        uuid.uuid4(), token_hash, user_id, tenant_id, ttl_s, created_by)


async def purge_console_tokens(conn, older_than_days: int = 30) -> None:
    """Invites and reset links long past their expiry (kept a while so a late click says
    'expired' rather than 'unknown')."""
    for table in ("invites", "password_resets"):
        await conn.execute(f"DELETE FROM {table} WHERE expires_at < now() - make_interval(days => $1)",
                           older_than_days)
