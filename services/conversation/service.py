"""The conversation use cases: store a visitor's messages and their replies, fail replies
that are overdue, and erase what a deleted chatbot, tenant or visitor leaves. No aiohttp or
aio-pika here; each event use case is idempotent (``claim`` on event_id)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

from common import events as ev
from common import metrics
from common.db import apply_once, claim, enqueue
from common.handlers import Defer
from common.logging import get_logger
from services.conversation import repository
from services.conversation.settings import Settings

log = get_logger(__name__)


@dataclass
class Deps:
    pool: asyncpg.Pool
    settings: Settings


TIMED_OUT_MESSAGE = "Sorry, we could not answer in time. Please try again."
# how soon a message that came before its predecessor is looked at again
ORDER_RETRY_S = 0.25


async def store_visitor_message(deps: Deps, event: ev.VisitorMessageReceivedEvent) -> None:
    history_messages = deps.settings.history_messages
    order_hold_s, reply_deadline_s = deps.settings.order_hold_s, deps.settings.reply_deadline_s
    waited_s = (datetime.now(timezone.utc) - event.occurred_at).total_seconds()
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        conversation = await repository.lock_conversation(conn, event.conversation_id, event.tenant_id)
        if conversation is None:
            log.warning("message_for_unknown_conversation")
            return
        if event.seq is not None:
            # messages are stored and answered in the order the gateway accepted them: one
            # that overtook its predecessor waits for it (a bounded time; then a gap is logged)
            expected = conversation["last_message_seq"] + 1
            if event.seq > expected:
                if waited_s < order_hold_s:
                    raise Defer(ORDER_RETRY_S, f"message {event.seq} waits for {expected}")
                log.warning("message_order_gap", expected=expected, seq=event.seq, waited_s=round(waited_s, 1))
                metrics.MESSAGE_ORDER_GAPS.labels("conversation").inc()
            await repository.set_last_message_seq(conn, event.conversation_id, event.seq)
        # a client retrying the same message gets no second reply
        if await repository.message_exists(conn, event.message_id):
            return
        reply_id = uuid.uuid4()
        if waited_s > reply_deadline_s:
            # it waited out an outage longer than a visitor is asked to wait: the visitor was
            # told (the gateway's stream), and the failure is stored, not answered late
            reply_seq = await repository.add_turn(
                conn, event.conversation_id, event.tenant_id, event.message_id, event.client_message_id, event.text,
                reply_id, accepted_at=event.occurred_at, reply_status="failed", error=("reply_timeout", TIMED_OUT_MESSAGE))
            await enqueue(conn, ev.AiReplyFailedEvent(
                tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
                reply_id=reply_id, reply_seq=reply_seq, code="reply_timeout", message=TIMED_OUT_MESSAGE,
                visitor_message_id=event.message_id))
            log.warning("message_too_old_to_answer", waited_s=round(waited_s, 1), reply_id=str(reply_id))
            return
        if event.history is not None:  # an API client sent the conversation itself
            history = [{"role": m.role, "text": m.text} for m in event.history[-history_messages:]]
        else:
            history = await repository.history(conn, event.conversation_id, history_messages)
        reply_seq = await repository.add_turn(conn, event.conversation_id, event.tenant_id, event.message_id,
                                              event.client_message_id, event.text, reply_id,
                                              accepted_at=event.occurred_at)
        await enqueue(conn, ev.AiReplyRequestedEvent(
            tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
            reply_id=reply_id, reply_seq=reply_seq, visitor_message_id=event.message_id, text=event.text,
            history=[ev.HistoryMessage(role=r["role"], text=r["text"]) for r in history],
            chatbot=event.chatbot))
    log.info("visitor_message_stored", reply_id=str(reply_id), reply_seq=reply_seq)


async def complete_reply(deps: Deps, event: ev.AiReplyCompletedEvent) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.complete_reply(
            conn, event.reply_id, event.text, [c.model_dump() for c in event.citations], event.intent,
            event.sentiment, event.usage.model_dump(), event.timings.model_dump())
    log.info("reply_stored", reply_id=str(event.reply_id))


async def request_handoff(deps: Deps, event: ev.HandoffRequestedEvent) -> None:
    """The visitor asked for a person: the conversation is flagged for the tenant's team."""
    flagged = await apply_once(deps.pool, event, repository.set_handoff, event.conversation_id, event.tenant_id)
    log.info("handoff_requested", conversation_id=str(event.conversation_id), flagged=flagged)


async def fail_reply(deps: Deps, event: ev.AiReplyFailedEvent) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.fail_reply(conn, event.reply_id, event.code, event.message)
    log.info("reply_failed_stored", reply_id=str(event.reply_id), code=event.code)


async def store_animation(deps: Deps, event: ev.AvatarAnimationSelectedEvent) -> None:
    await apply_once(deps.pool, event, repository.set_animation, event.reply_id,
                     {"behaviour": event.behaviour, "clip": event.clip})


async def fail_overdue_replies(deps: Deps) -> int:
    """Fail replies pending past REPLY_DEADLINE_SECONDS (the ai service is down or stuck), so
    the visitor gets an ``error`` instead of waiting forever. This is the one owner of the
    reply deadline; ai stops a little before it, so its own failure arrives first."""
    async with deps.pool.acquire() as conn, conn.transaction():
        rows = await repository.overdue_replies(conn, deps.settings.reply_deadline_s)
        events = []
        for row in rows:
            await repository.fail_reply(conn, row["id"], "reply_timeout", "no reply came in time")
            events.append(ev.AiReplyFailedEvent(
                tenant_id=row["tenant_id"], chatbot_id=row["chatbot_id"], conversation_id=row["conversation_id"],
                reply_id=row["id"], reply_seq=row["seq"], code="reply_timeout", message=TIMED_OUT_MESSAGE,
                visitor_message_id=row["reply_to"]))
        if events:
            await enqueue(conn, *events)
    if rows:
        log.warning("overdue_replies_failed", count=len(rows))
    return len(rows)


async def store_feedback(deps: Deps, event: ev.FeedbackGivenEvent) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        stored = await repository.set_rating(conn, event.reply_id, event.conversation_id, event.rating,
                                             event.comment, event.occurred_at)
    log.info("feedback_stored", reply_id=str(event.reply_id), rating=event.rating, stored=stored)


# --- lifecycles --------------------------------------------------------------------------------
# A deleted chatbot's conversations are deleted at once, not kept for the analytics retention:
# nobody can read them any more (the chatbot's routes are gone with it), analytics keeps its
# own copy under its own retention only until its own ChatbotDeletedEvent handler runs, and a
# tenant that deletes a chatbot expects its visitors' words gone (docs/architecture.md).

async def delete_chatbot(deps: Deps, event: ev.ChatbotDeletedEvent) -> None:
    deleted = await apply_once(deps.pool, event, repository.delete_chatbot, event.tenant_id, event.chatbot_id)
    log.info("chatbot_conversations_deleted", chatbot_id=str(event.chatbot_id), conversations=deleted)


async def delete_tenant(deps: Deps, event: ev.TenantDeletedEvent) -> None:
    await apply_once(deps.pool, event, repository.delete_tenant, event.tenant_id)
    log.info("tenant_conversations_deleted")


async def erase_visitor(deps: Deps, event: ev.VisitorDataErasureRequestedEvent) -> None:
    """Erase the visitor here, then tell the others which conversations and messages were
    theirs (the outbox commits that with the erasure)."""
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        conversation_ids, message_ids = await repository.delete_visitor(
            conn, event.tenant_id, event.chatbot_id, event.visitor_id)
        await enqueue(conn, ev.VisitorDataErasedEvent(
            tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, visitor_id=event.visitor_id,
            conversation_ids=conversation_ids, message_ids=message_ids))
    log.info("visitor_erased", conversations=len(conversation_ids), messages=len(message_ids))


async def export_visitor(pool: asyncpg.Pool, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                         visitor_id: uuid.UUID) -> dict | None:
    """Everything stored here about one visitor: conversations with their messages (ratings and
    comments included). None when there is no such visitor of this chatbot."""
    async with pool.acquire() as conn:
        visitor = await repository.visitor(conn, tenant_id, chatbot_id, visitor_id)
        if visitor is None:
            return None
        conversations = []
        for row in await repository.visitor_conversations(conn, tenant_id, chatbot_id, visitor_id):
            conversations.append((row, await repository.messages(conn, row["id"], tenant_id)))
    return {"visitor": visitor, "conversations": conversations}
