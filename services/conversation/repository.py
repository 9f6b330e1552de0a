"""All SQL of the conversation service."""
from __future__ import annotations

import uuid



async def get_visitor(conn, visitor_id: uuid.UUID, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
    return await conn.fetchrow(
        "UPDATE visitors SET last_seen_at = now() WHERE id = $1 AND tenant_id = $2 AND chatbot_id = $3 "
        "RETURNING *", visitor_id, tenant_id, chatbot_id)


async def create_visitor(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
    return await conn.fetchrow("INSERT INTO visitors (id, tenant_id, chatbot_id) VALUES ($1, $2, $3) RETURNING *",
                               uuid.uuid4(), tenant_id, chatbot_id)


async def create_conversation(conn, tenant_id, chatbot_id, visitor_id):
    return await conn.fetchrow(
        "INSERT INTO conversations (id, tenant_id, chatbot_id, visitor_id) VALUES ($1, $2, $3, $4) RETURNING *",
        uuid.uuid4(), tenant_id, chatbot_id, visitor_id)


async def lock_conversation(conn, conversation_id: uuid.UUID, tenant_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM conversations WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                               conversation_id, tenant_id)


async def message_exists(conn, message_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM messages WHERE id = $1", message_id))


async def history(conn, conversation_id: uuid.UUID, limit: int):
    rows = await conn.fetch(
        "SELECT role, text FROM messages WHERE conversation_id = $1 AND status IN ('received', 'completed') "
        "ORDER BY seq DESC LIMIT $2", conversation_id, limit)
    return list(reversed(rows))


async def add_turn(conn, conversation_id, tenant_id, message_id, client_message_id, text, reply_id, *,
                   accepted_at, reply_status: str = "pending", error: tuple[str, str] | None = None) -> int:
    """Store the visitor's message and its reply (pending, or already failed); return the
    reply's sequence number. Both rows are dated when the gateway accepted the message, so
    the reply deadline counts from then, not from when an outage let us store it."""
    seq = await conn.fetchval(
        "UPDATE conversations SET next_seq = next_seq + 2, updated_at = now() WHERE id = $1 "
        "RETURNING next_seq - 2", conversation_id)
    code, message = error or (None, None)
    await conn.executemany(
        "INSERT INTO messages (id, conversation_id, tenant_id, seq, role, status, text, client_message_id, reply_to, "
        "created_at, error_code, error_message, completed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $6 = 'failed' THEN now() END)",
        [(message_id, conversation_id, tenant_id, seq, "visitor", "received", text, client_message_id, None,
          accepted_at, None, None),
         (reply_id, conversation_id, tenant_id, seq + 1, "assistant", reply_status, "", None, message_id,
          accepted_at, code, message)])
    return seq + 1


async def set_last_message_seq(conn, conversation_id: uuid.UUID, seq: int) -> None:
    await conn.execute("UPDATE conversations SET last_message_seq = greatest(last_message_seq, $2) WHERE id = $1",
                       conversation_id, seq)


async def complete_reply(conn, reply_id, text, citations, intent, sentiment, usage, timings) -> bool:
    status = await conn.execute(
        "UPDATE messages SET status = 'completed', text = $2, citations = $3, intent = $4, sentiment = $5, "
        "usage = $6, timings = $7, completed_at = now(), error_code = NULL, error_message = NULL "
        "WHERE id = $1 AND status <> 'completed'",
        reply_id, text, citations, intent, sentiment, usage, timings)
    return status != "UPDATE 0"


async def fail_reply(conn, reply_id, code: str, message: str) -> bool:
    status = await conn.execute(
        "UPDATE messages SET status = 'failed', error_code = $2, error_message = $3, completed_at = now() "
        "WHERE id = $1 AND status = 'pending'", reply_id, code, message)
    return status != "UPDATE 0"


async def set_handoff(conn, conversation_id, tenant_id) -> bool:
    return await conn.execute("UPDATE conversations SET handoff_requested = true, updated_at = now() "
                              "WHERE id = $1 AND tenant_id = $2", conversation_id, tenant_id) != "UPDATE 0"


async def set_animation(conn, reply_id, animation: dict) -> None:
    await conn.execute("UPDATE messages SET animation = $2 WHERE id = $1", reply_id, animation)


async def overdue_replies(conn, older_than_s: float, limit: int = 100):
    return await conn.fetch(
        "SELECT m.id, m.seq, m.conversation_id, m.tenant_id, m.reply_to, c.chatbot_id FROM messages m "
        "JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.status = 'pending' AND m.created_at < now() - make_interval(secs => $1) "
        "ORDER BY m.created_at LIMIT $2 FOR UPDATE OF m SKIP LOCKED", older_than_s, limit)


async def messages(conn, conversation_id: uuid.UUID, tenant_id: uuid.UUID, after_seq: int = 0,
                   role: str | None = None, finished_only: bool = False):
    return await conn.fetch(
        "SELECT * FROM messages WHERE conversation_id = $1 AND tenant_id = $2 AND seq > $3 "
        "AND ($4::text IS NULL OR role = $4) AND (NOT $5 OR status IN ('completed', 'failed')) ORDER BY seq",
        conversation_id, tenant_id, after_seq, role, finished_only)


async def conversation(conn, conversation_id: uuid.UUID, tenant_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM conversations WHERE id = $1 AND tenant_id = $2",
                               conversation_id, tenant_id)


async def list_conversations(conn, tenant_id, chatbot_id=None, *, since=None, until=None, visitor_id=None,
                             handoff: bool | None = None, rating: str | None = None, before=None,
                             limit: int = 20):
    """Newest first, keyset-paginated on (created_at, id); every chatbot's when ``chatbot_id``
    is None. ``rating``: only conversations with a reply the visitor rated so ("up"/"down")."""
    return await conn.fetch(
        "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS messages "
        "FROM conversations c WHERE c.tenant_id = $1 AND ($2::uuid IS NULL OR c.chatbot_id = $2) "
        "AND ($3::timestamptz IS NULL OR c.created_at >= $3) AND ($4::timestamptz IS NULL OR c.created_at < $4) "
        "AND ($5::uuid IS NULL OR c.visitor_id = $5) "
        "AND ($6::timestamptz IS NULL OR (c.created_at, c.id) < ($6, $7)) "
        "AND ($9::boolean IS NULL OR c.handoff_requested = $9) "
        "AND ($10::text IS NULL OR EXISTS (SELECT 1 FROM messages r WHERE r.conversation_id = c.id "
        "AND r.role = 'assistant' AND r.rating = $10)) "
        "ORDER BY c.created_at DESC, c.id DESC LIMIT $8",
        tenant_id, chatbot_id, since, until, visitor_id, before[0] if before else None,
        before[1] if before else None, limit, handoff, rating)


async def conversation_with_count(conn, conversation_id, tenant_id):
    return await conn.fetchrow(
        "SELECT c.*, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS messages "
        "FROM conversations c WHERE c.id = $1 AND c.tenant_id = $2", conversation_id, tenant_id)


async def set_rating(conn, reply_id, conversation_id, rating: str, comment: str, rated_at) -> bool:
    """Store a visitor's rating on the reply, unless a newer rating is already there."""
    status = await conn.execute(
        "UPDATE messages SET rating = $3, rating_comment = $4, rated_at = $5 "
        "WHERE id = $1 AND conversation_id = $2 AND role = 'assistant' "
        "AND (rated_at IS NULL OR rated_at < $5)", reply_id, conversation_id, rating, comment, rated_at)
    return status != "UPDATE 0"


async def reply(conn, reply_id, tenant_id):
    return await conn.fetchrow(
        "SELECT m.*, c.chatbot_id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.id = $1 AND m.tenant_id = $2 AND m.role = 'assistant'", reply_id, tenant_id)


# --- erasure (chatbot or tenant deleted, a visitor's data erased) ------------------------------

async def delete_chatbot(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> int:
    """A deleted chatbot's visitors, conversations and messages (the messages cascade)."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM conversations WHERE tenant_id = $1 AND chatbot_id = $2 RETURNING 1) "
        "SELECT count(*) FROM gone", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM visitors WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    return deleted


async def delete_tenant(conn, tenant_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM messages WHERE tenant_id = $1", tenant_id)
    await conn.execute("DELETE FROM conversations WHERE tenant_id = $1", tenant_id)
    await conn.execute("DELETE FROM visitors WHERE tenant_id = $1", tenant_id)


async def visitor_conversations(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, visitor_id: uuid.UUID):
    return await conn.fetch(
        "SELECT * FROM conversations WHERE tenant_id = $1 AND chatbot_id = $2 AND visitor_id = $3 "
        "ORDER BY created_at, id", tenant_id, chatbot_id, visitor_id)


async def visitor(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, visitor_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM visitors WHERE id = $1 AND tenant_id = $2 AND chatbot_id = $3",
                               visitor_id, tenant_id, chatbot_id)


async def delete_visitor(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                         visitor_id: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Erase one visitor: their conversations, messages and the visitor row. Returns the ids
    of the conversations and messages erased, for the other services to erase theirs."""
    conversation_ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM conversations WHERE tenant_id = $1 AND chatbot_id = $2 AND visitor_id = $3 FOR UPDATE",
        tenant_id, chatbot_id, visitor_id)]
    message_ids = [r["id"] for r in await conn.fetch(
        "DELETE FROM messages WHERE conversation_id = ANY($1::uuid[]) RETURNING id", conversation_ids)]
    await conn.execute("DELETE FROM conversations WHERE id = ANY($1::uuid[])", conversation_ids)
    await conn.execute("DELETE FROM visitors WHERE id = $1 AND tenant_id = $2 AND chatbot_id = $3",
                       visitor_id, tenant_id, chatbot_id)
    return conversation_ids, message_ids
