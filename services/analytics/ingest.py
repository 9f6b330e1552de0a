"""Recording one event: store it once, then update facts and rollups in the same transaction.

The raw insert is refused for a redelivered event (same event_id and occurred_at), and then
nothing else happens, so a consumer restarted mid-batch never counts anything twice. Facts
rows (one per reply, one per conversation) make the "once per reply / per conversation"
counts exact even when one reply's events arrive out of order on their separate queues.
"""
from __future__ import annotations

import math
from datetime import date

import asyncpg

from common import events as ev
from services.analytics import repository as repo

# visitor intents that are not questions: no answer from knowledge is expected for them
NOT_QUESTIONS = frozenset({"greeting", "thanks", "goodbye", "asks_for_human", "about_bot"})
LATENCY_BASE = 1.1
LATENCY_MAX_IDX = 200


def latency_index(ms: float) -> int:
    """Histogram bucket of a duration: [1.1^i, 1.1^(i+1)) ms."""
    if ms is None or ms < 1:
        return 0
    return min(LATENCY_MAX_IDX, int(math.log(ms) / math.log(LATENCY_BASE)))


def latency_of_index(idx: int) -> float:
    """The geometric middle of a bucket: within 5% of any time in it."""
    return LATENCY_BASE ** (idx + 0.5)


def sentiment_class(score: float) -> str:
    if score >= 0.05:
        return "sentiment_positive"
    if score <= -0.05:
        return "sentiment_negative"
    return "sentiment_neutral"


def is_unanswered(event: ev.AiReplyCompletedEvent) -> bool:
    """Knowledge found nothing above the threshold, or the bot fell back, for a real question."""
    return not event.answered_from_knowledge and event.visitor_intent not in NOT_QUESTIONS


class PartitionCache:
    """The months known to have a partition, so the hot path skips the catalog."""

    def __init__(self) -> None:
        self.months: set[date] = set()

    async def ensure(self, pool: asyncpg.Pool, month: date) -> None:
        if month in self.months:
            return
        async with pool.acquire() as conn:
            await repo.ensure_partition(conn, month)
        self.months.add(month)


async def record(conn: asyncpg.Connection, event: ev.Event,
                 rollups: repo.RollupDeltas | None = None) -> bool:
    """Store ``event`` and apply it to facts and rollups; False if it had been recorded before.
    Call inside a transaction. With ``rollups`` given, its rollup changes are added there and
    the caller flushes them before committing (a batch); otherwise they are written now."""
    if not await repo.insert_event(conn, event, event.model_dump(mode="json")):
        return False
    apply = APPLY.get(type(event))
    if apply is not None:
        own = rollups is None
        rollups = rollups if rollups is not None else repo.RollupDeltas()
        await apply(conn, event, rollups)
        if own:
            await rollups.flush(conn)
    return True


async def _conversation_started(conn, e: ev.ConversationStartedEvent, rollups: repo.RollupDeltas) -> None:
    at = e.occurred_at
    await repo.touch_conversation(conn, e, at)
    await repo.update_conversation(conn, e.conversation_id, at, sets={
        "visitor_id": e.visitor_id, "started_at": at, "returning_visitor": e.returning_visitor})
    await repo.add_visitor_day(conn, e.tenant_id, e.chatbot_id, at, e.visitor_id)
    rollups.bump(e.tenant_id, e.chatbot_id, at, conversations=1,
                 new_visitors=0 if e.returning_visitor else 1,
                 returning_conversations=1 if e.returning_visitor else 0)


async def _reply_requested(conn, e: ev.AiReplyRequestedEvent, rollups: repo.RollupDeltas) -> None:
    """One per visitor message the conversation service stored (it dedupes client retries)."""
    at = e.occurred_at
    conversation = await repo.touch_conversation(conn, e, at)
    await repo.touch_reply(conn, e, at)
    await repo.update_reply(conn, e.reply_id, question=e.text[:4000], asked_at=at)
    await repo.update_conversation(conn, e.conversation_id, at, adds={"messages": 1})
    rollups.bump(e.tenant_id, e.chatbot_id, at, messages=1,
                 engaged_conversations=1 if conversation["messages"] == 0 else 0)


async def _reply_completed(conn, e: ev.AiReplyCompletedEvent, rollups: repo.RollupDeltas) -> None:
    at = e.occurred_at
    await repo.touch_conversation(conn, e, at)
    reply = await repo.touch_reply(conn, e, at)
    if reply["status"] == "completed":
        return  # a second completion of one reply (should not happen) is not a second reply
    unanswered = is_unanswered(e)
    await repo.update_reply(
        conn, e.reply_id, status="completed", answer=e.text[:8000],
        citations=[c.model_dump(mode="json") for c in e.citations], answered_from_knowledge=e.answered_from_knowledge,
        intent=e.intent, visitor_intent=e.visitor_intent, unanswered=unanswered, completed_at=at)
    usage = e.usage
    cost = round(usage.cost_usd, 6)
    await repo.update_conversation(
        conn, e.conversation_id, at,
        adds={"replies": 1, "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
              "cost_usd": cost, "failed_replies": -1 if reply["status"] == "failed" else 0})
    rollups.bump(
        e.tenant_id, e.chatbot_id, at, replies=1,
        failed_replies=-1 if reply["status"] == "failed" else 0,
        cache_hits=1 if usage.cached else 0, answered_from_knowledge=1 if e.answered_from_knowledge else 0,
        unanswered=1 if unanswered else 0, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, cost_usd=cost, **{sentiment_class(e.visitor_sentiment): 1})
    rollups.bump_model(e.tenant_id, e.chatbot_id, at, e.provider, e.model, replies=1,
                       cache_hits=1 if usage.cached else 0, prompt_tokens=usage.prompt_tokens,
                       completion_tokens=usage.completion_tokens, cost_usd=cost)
    if e.timings.ttft_ms is not None:
        rollups.bump_latency(e.tenant_id, e.chatbot_id, at, "t", latency_index(e.timings.ttft_ms))
    rollups.bump_latency(e.tenant_id, e.chatbot_id, at, "r", latency_index(e.timings.total_ms))
    rollups.bump_intent(e.tenant_id, e.chatbot_id, at, e.visitor_intent)


async def _reply_failed(conn, e: ev.AiReplyFailedEvent, rollups: repo.RollupDeltas) -> None:
    at = e.occurred_at
    await repo.touch_conversation(conn, e, at)
    reply = await repo.touch_reply(conn, e, at)
    if reply["status"] != "pending":
        return  # like the conversation service: only a pending reply can fail
    await repo.update_reply(conn, e.reply_id, status="failed", completed_at=at)
    await repo.update_conversation(conn, e.conversation_id, at, adds={"failed_replies": 1})
    rollups.bump(e.tenant_id, e.chatbot_id, at, failed_replies=1,
                 cancelled_replies=1 if e.code == "cancelled" else 0)


async def _feedback_given(conn, e: ev.FeedbackGivenEvent, rollups: repo.RollupDeltas) -> None:
    """The newest rating of a reply counts, once, in the bucket of the reply's first rating."""
    at = e.occurred_at
    await repo.touch_conversation(conn, e, at)
    reply = await repo.touch_reply(conn, e, at)
    if reply["rated_at"] is not None and reply["rated_at"] >= at:
        return  # an older rating arriving late
    old = reply["rating"]
    first_rated_at = reply["first_rated_at"] or at
    await repo.update_reply(conn, e.reply_id, rating=e.rating, rating_comment=e.comment[:2000], rated_at=at,
                            first_rated_at=first_rated_at)
    if old == e.rating:
        return
    deltas = {f"feedback_{e.rating}": 1}
    if old is not None:
        deltas[f"feedback_{old}"] = -1
    await repo.update_conversation(conn, e.conversation_id, at, adds=deltas)
    rollups.bump(e.tenant_id, e.chatbot_id, first_rated_at, **deltas)


async def _handoff_requested(conn, e: ev.HandoffRequestedEvent, rollups: repo.RollupDeltas) -> None:
    """Every request counts; a conversation counts once, however often its visitor asks."""
    at = e.occurred_at
    conversation = await repo.touch_conversation(conn, e, at)
    new = not conversation["handoff"]
    await repo.update_conversation(conn, e.conversation_id, at, sets={"handoff": True} if new else {})
    rollups.bump(e.tenant_id, e.chatbot_id, at, handoff_requests=1, handoff_conversations=1 if new else 0)


APPLY = {
    ev.ConversationStartedEvent: _conversation_started,
    ev.AiReplyRequestedEvent: _reply_requested,
    ev.AiReplyCompletedEvent: _reply_completed,
    ev.AiReplyFailedEvent: _reply_failed,
    ev.FeedbackGivenEvent: _feedback_given,
    ev.HandoffRequestedEvent: _handoff_requested,
}
