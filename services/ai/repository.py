"""All SQL of the ai service."""
from __future__ import annotations

from common.events import AiReplyCompletedEvent


async def record_reply(conn, event: AiReplyCompletedEvent, status: str = "completed") -> None:
    await conn.execute(
        "INSERT INTO replies (reply_id, tenant_id, chatbot_id, conversation_id, provider, model, prompt_tokens, "
        "completion_tokens, cost_usd, cached, ttft_ms, total_ms, status) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (reply_id) DO NOTHING",
        event.reply_id, event.tenant_id, event.chatbot_id, event.conversation_id, event.provider, event.model,
        event.usage.prompt_tokens, event.usage.completion_tokens, event.usage.cost_usd, event.usage.cached,
        event.timings.ttft_ms, event.timings.total_ms, status)


async def record_failure(conn, event, provider: str, model: str, total_ms: float) -> None:
    await conn.execute(
        "INSERT INTO replies (reply_id, tenant_id, chatbot_id, conversation_id, provider, model, total_ms, status) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 'failed') ON CONFLICT (reply_id) DO NOTHING",
        event.reply_id, event.tenant_id, event.chatbot_id, event.conversation_id, provider, model, total_ms)


async def reply_recorded(conn, reply_id) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM replies WHERE reply_id = $1", reply_id))
