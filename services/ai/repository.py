"""All SQL of the ai service."""
from __future__ import annotations

import uuid
from datetime import datetime

from common.events import AiReplyCompletedEvent


# --- the ledger ------------------------------------------------------------------------------

async def record_reply(conn, event: AiReplyCompletedEvent, status: str = "completed", *,
                       fallback_used: bool = False, knowledge_version: int | None = None) -> None:
    await conn.execute(
        "INSERT INTO replies (reply_id, tenant_id, chatbot_id, conversation_id, provider, model, prompt_tokens, "
        "completion_tokens, cost_usd, cached, ttft_ms, total_ms, status, fallback_used, knowledge_version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (reply_id) DO NOTHING",
        event.reply_id, event.tenant_id, event.chatbot_id, event.conversation_id, event.provider, event.model,
        event.usage.prompt_tokens, event.usage.completion_tokens, event.usage.cost_usd, event.usage.cached,
        event.timings.ttft_ms, event.timings.total_ms, status, fallback_used, knowledge_version)


async def record_failure(conn, event, provider: str, model: str, total_ms: float, *, code: str,
                         prompt_tokens: int = 0, completion_tokens: int = 0, cost_usd: float = 0.0) -> None:
    """A failed or cancelled reply; tokens a provider already billed still count."""
    await conn.execute(
        "INSERT INTO replies (reply_id, tenant_id, chatbot_id, conversation_id, provider, model, total_ms, status, "
        "error_code, prompt_tokens, completion_tokens, cost_usd) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (reply_id) DO NOTHING",
        event.reply_id, event.tenant_id, event.chatbot_id, event.conversation_id, provider, model, total_ms,
        "cancelled" if code == "cancelled" else "failed", code, prompt_tokens, completion_tokens, cost_usd)


async def reply_recorded(conn, reply_id) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM replies WHERE reply_id = $1", reply_id))


_GROUPS = {
    "chatbot": "chatbot_id::text",
    "day": "to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    "model": "provider || ':' || model",
}


async def usage(conn, tenant_id: uuid.UUID, start: datetime, end: datetime, group_by: str) -> list[dict]:
    key = _GROUPS[group_by]  # validated by the caller; never user text in SQL
    rows = await conn.fetch(
        f"SELECT {key} AS key, count(*) AS replies, "
        "count(*) FILTER (WHERE cached) AS cached_replies, "
        "count(*) FILTER (WHERE status <> 'completed') AS failed_replies, "
        "coalesce(sum(prompt_tokens), 0) AS prompt_tokens, coalesce(sum(completion_tokens), 0) AS completion_tokens, "
        "coalesce(sum(cost_usd), 0) AS cost_usd "
        "FROM replies WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 "
        "GROUP BY 1 ORDER BY 1", tenant_id, start, end)
    return [dict(r) for r in rows]


# --- tenant provider keys --------------------------------------------------------------------

async def put_provider_key(conn, tenant_id: uuid.UUID, provider: str, ciphertext: bytes, hint: str,
                           base_url: str | None) -> dict:
    row = await conn.fetchrow(
        "INSERT INTO provider_keys (tenant_id, provider, key_ciphertext, key_hint, base_url) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, provider) DO UPDATE SET "
        "key_ciphertext = EXCLUDED.key_ciphertext, key_hint = EXCLUDED.key_hint, base_url = EXCLUDED.base_url, "
        "updated_at = now() RETURNING provider, key_hint, base_url, created_at, updated_at",
        tenant_id, provider, ciphertext, hint, base_url)
    return dict(row)


async def get_provider_key_info(conn, tenant_id: uuid.UUID, provider: str) -> dict | None:
    row = await conn.fetchrow(
        "SELECT provider, key_hint, base_url, created_at, updated_at FROM provider_keys "
        "WHERE tenant_id = $1 AND provider = $2", tenant_id, provider)
    return dict(row) if row else None


async def get_provider_key_secret(conn, tenant_id: uuid.UUID, provider: str):
    return await conn.fetchrow("SELECT key_ciphertext, base_url FROM provider_keys "
                               "WHERE tenant_id = $1 AND provider = $2", tenant_id, provider)


async def delete_provider_key(conn, tenant_id: uuid.UUID, provider: str) -> bool:
    return await conn.fetchval("DELETE FROM provider_keys WHERE tenant_id = $1 AND provider = $2 RETURNING 1",
                               tenant_id, provider) is not None


# --- the reply cache -------------------------------------------------------------------------

async def cached_reply(conn, cache_key: str):
    return await conn.fetchrow(
        "UPDATE reply_cache SET hits = hits + 1 WHERE cache_key = $1 AND expires_at > now() "
        "RETURNING text, citations, answered_from_knowledge, provider, model", cache_key)


async def store_cached_reply(conn, cache_key: str, tenant_id, chatbot_id, knowledge_version: int, text: str,
                             citations: list[dict], answered_from_knowledge: bool, provider: str, model: str,
                             ttl_s: int) -> None:
    await conn.execute(
        "INSERT INTO reply_cache (cache_key, tenant_id, chatbot_id, knowledge_version, text, citations, "
        "answered_from_knowledge, provider, model, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10)) "
        "ON CONFLICT (cache_key) DO UPDATE SET text = EXCLUDED.text, citations = EXCLUDED.citations, "
        "answered_from_knowledge = EXCLUDED.answered_from_knowledge, provider = EXCLUDED.provider, "
        "model = EXCLUDED.model, created_at = now(), expires_at = EXCLUDED.expires_at, hits = 0",
        cache_key, tenant_id, chatbot_id, knowledge_version, text, citations, answered_from_knowledge,
        provider, model, float(ttl_s))


async def purge_expired_cache(conn) -> int:
    purged = int((await conn.execute("DELETE FROM reply_cache WHERE expires_at <= now()")).split()[-1])
    # a rewrite serves the retries of its own turn; a day is far more than they need
    purged += int((await conn.execute(
        "DELETE FROM query_rewrites WHERE created_at < now() - interval '1 day'")).split()[-1])
    return purged


async def cached_rewrite(conn, rewrite_key: str) -> str | None:
    return await conn.fetchval("SELECT query FROM query_rewrites WHERE rewrite_key = $1", rewrite_key)


async def store_rewrite(conn, rewrite_key: str, tenant_id, chatbot_id, conversation_id, query: str) -> None:
    await conn.execute("INSERT INTO query_rewrites (rewrite_key, tenant_id, chatbot_id, conversation_id, query) "
                       "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rewrite_key) DO NOTHING",
                       rewrite_key, tenant_id, chatbot_id, conversation_id, query)


# --- cancel flags ----------------------------------------------------------------------------

async def request_cancel(conn, reply_id: uuid.UUID, tenant_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO reply_cancellations (reply_id, tenant_id) VALUES ($1, $2) "
                       "ON CONFLICT DO NOTHING", reply_id, tenant_id)


async def cancel_requested(conn, reply_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM reply_cancellations WHERE reply_id = $1 AND tenant_id = $2",
                                    reply_id, tenant_id))


async def reply_status(conn, reply_id: uuid.UUID, tenant_id: uuid.UUID) -> str | None:
    return await conn.fetchval("SELECT status FROM replies WHERE reply_id = $1 AND tenant_id = $2",
                               reply_id, tenant_id)


# --- erasure (chatbot or tenant deleted, a visitor's data erased) ------------------------------

async def delete_chatbot(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    """The chatbot's ledger rows, cached replies and rewrites (its costs leave the reports)."""
    await conn.execute("DELETE FROM reply_cancellations WHERE tenant_id = $1 AND reply_id IN "
                       "(SELECT reply_id FROM replies WHERE tenant_id = $1 AND chatbot_id = $2)", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM replies WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM reply_cache WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM query_rewrites WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)


async def delete_tenant(conn, tenant_id: uuid.UUID) -> None:
    for table in ("replies", "reply_cache", "reply_cancellations", "query_rewrites", "provider_keys"):
        await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)


async def delete_conversations(conn, tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID],
                               reply_ids: list[uuid.UUID]) -> None:
    await conn.execute("DELETE FROM replies WHERE tenant_id = $1 AND conversation_id = ANY($2::uuid[])",
                       tenant_id, conversation_ids)
    await conn.execute("DELETE FROM query_rewrites WHERE tenant_id = $1 AND conversation_id = ANY($2::uuid[])",
                       tenant_id, conversation_ids)
    await conn.execute("DELETE FROM reply_cancellations WHERE tenant_id = $1 AND reply_id = ANY($2::uuid[])",
                       tenant_id, reply_ids)
