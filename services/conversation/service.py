"""Event handlers of the conversation service; each is idempotent (``claim`` on event_id)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import asyncpg

from common import events as ev
from common import metrics
from common.bus import Defer
from common.db import claim, enqueue
from common.logging import get_logger
from services.conversation import repository

log = get_logger(__name__)


TIMED_OUT_MESSAGE = "Sorry, we could not answer in time. Please try again."
# how soon a message that came before its predecessor is looked at again
ORDER_RETRY_S = 0.25


async def on_visitor_message_received(event: ev.VisitorMessageReceivedEvent, *, pool: asyncpg.Pool,
                                      history_messages: int, order_hold_s: float = 10.0,
                                      reply_deadline_s: float = 180.0) -> None:
    waited_s = (datetime.now(timezone.utc) - event.occurred_at).total_seconds()
    async with pool.acquire() as conn, conn.transaction():
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


async def on_ai_reply_completed(event: ev.AiReplyCompletedEvent, *, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.complete_reply(
            conn, event.reply_id, event.text, [c.model_dump() for c in event.citations], event.intent,
            event.sentiment, event.usage.model_dump(), event.timings.model_dump())
        if event.visitor_intent == "asks_for_human" or event.intent == "asks_for_human":
            await repository.set_handoff(conn, event.conversation_id)
    log.info("reply_stored", reply_id=str(event.reply_id))


async def on_ai_reply_failed(event: ev.AiReplyFailedEvent, *, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.fail_reply(conn, event.reply_id, event.code, event.message)
    log.info("reply_failed_stored", reply_id=str(event.reply_id), code=event.code)


async def on_avatar_animation_selected(event: ev.AvatarAnimationSelectedEvent, *, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await repository.set_animation(conn, event.reply_id, {"behaviour": event.behaviour, "clip": event.clip})


async def fail_overdue_replies(pool: asyncpg.Pool, deadline_s: float) -> int:
    """Fail replies pending past the deadline (the ai service is down or stuck), so the visitor
    gets an ``error`` instead of waiting forever."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await repository.overdue_replies(conn, deadline_s)
        events = []
        for row in rows:
            await repository.fail_reply(conn, row["id"], "reply_timeout", "no reply came in time")
            events.append(ev.AiReplyFailedEvent(
                tenant_id=row["tenant_id"], chatbot_id=row["chatbot_id"], conversation_id=row["conversation_id"],
                reply_id=row["id"], reply_seq=row["seq"], code="reply_timeout", message=TIMED_OUT_MESSAGE,
                visitor_message_id=row["reply_to"]))
        if events:
            await enqueue(conn, *events)
    return len(rows)


async def on_feedback_given(event: ev.FeedbackGivenEvent, *, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        stored = await repository.set_rating(conn, event.reply_id, event.conversation_id, event.rating,
                                             event.comment, event.occurred_at)
    log.info("feedback_stored", reply_id=str(event.reply_id), rating=event.rating, stored=stored)
