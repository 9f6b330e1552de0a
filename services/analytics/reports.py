"""The reports: figures computed from rollups and facts, never from raw events."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import asyncpg

from common.web import ApiError
from services.analytics import clustering, ingest
from services.analytics import repository as repo

MAX_RANGE_DAYS = 366
MAX_HOURLY_DAYS = 31
EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)


@dataclass(frozen=True)
class Range:
    since: date
    until: date  # inclusive

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return repo.day_range(self.since, self.until)

    def previous(self) -> "Range":
        return Range(self.since - timedelta(days=self.days), self.since - timedelta(days=1))


def parse_range(since: str | None, until: str | None, *, today: date | None = None) -> Range:
    """ISO dates, both inclusive, UTC. Defaults: the last 30 days. Clear 400s for bad ranges."""
    today = today or datetime.now(timezone.utc).date()
    try:
        end = date.fromisoformat(until) if until else today
        start = date.fromisoformat(since) if since else end - timedelta(days=29)
    except ValueError:
        raise ApiError(400, "invalid_date", "dates are ISO dates, e.g. 2026-11-01",
                       {"from": since, "to": until}) from None
    if start < EARLIEST or end > LATEST:
        raise ApiError(400, "date_out_of_range", f"dates must be between {EARLIEST} and {LATEST}",
                       {"from": start.isoformat(), "to": end.isoformat()})
    if start > end:
        raise ApiError(400, "inverted_date_range", "'from' is after 'to'",
                       {"from": start.isoformat(), "to": end.isoformat()})
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ApiError(400, "date_range_too_long", f"a range covers at most {MAX_RANGE_DAYS} days",
                       {"from": start.isoformat(), "to": end.isoformat(), "max_days": MAX_RANGE_DAYS})
    return Range(start, end)


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(histogram: dict[int, int], p: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    wanted, seen = p * total, 0
    for idx in sorted(histogram):
        seen += histogram[idx]
        if seen >= wanted:
            return round(ingest.latency_of_index(idx), 1)
    return None


def metrics(row, visitors: int, histograms: dict[str, dict[int, int]]) -> dict:
    """Every headline figure of a scope, from summed rollup columns."""
    r = {c: (row[c] if row is not None else 0) for c in repo.ROLLUP_COLUMNS}
    conversations, replies, messages = r["conversations"], r["replies"], r["messages"]
    engaged, handoffs = r["engaged_conversations"], r["handoff_conversations"]
    up, down = r["feedback_up"], r["feedback_down"]
    cost = float(r["cost_usd"])
    new_visitors = r["new_visitors"]
    return {
        "conversations": conversations,
        "engaged_conversations": engaged,
        "visitors": visitors,
        "new_visitors": new_visitors,
        "returning_visitors": max(0, visitors - new_visitors),
        "messages": messages,
        "replies": replies,
        "failed_replies": r["failed_replies"],
        "cancelled_replies": r["cancelled_replies"],
        "errors": r["failed_replies"] - r["cancelled_replies"],
        "interactions_per_conversation": _rate(messages, conversations),
        "handoff_requests": r["handoff_requests"],
        "handoff_conversations": handoffs,
        "deflection_rate": _rate(engaged - handoffs, engaged),
        "cache_hits": r["cache_hits"],
        "cache_hit_rate": _rate(r["cache_hits"], replies),
        "answered_from_knowledge": r["answered_from_knowledge"],
        "unanswered": r["unanswered"],
        "feedback_up": up,
        "feedback_down": down,
        "satisfaction_rate": _rate(up, up + down),
        "likes_per_1000_replies": round(up * 1000 / replies, 2) if replies else None,
        "prompt_tokens": r["prompt_tokens"],
        "completion_tokens": r["completion_tokens"],
        "total_tokens": r["prompt_tokens"] + r["completion_tokens"],
        "cost_usd": round(cost, 6),
        "cost_per_conversation_usd": round(cost / conversations, 6) if conversations else None,
        "ttft_p50_ms": percentile(histograms.get("t", {}), 0.5),
        "ttft_p95_ms": percentile(histograms.get("t", {}), 0.95),
        "reply_time_p50_ms": percentile(histograms.get("r", {}), 0.5),
        "reply_time_p95_ms": percentile(histograms.get("r", {}), 0.95),
        "sentiment": {"positive": r["sentiment_positive"], "neutral": r["sentiment_neutral"],
                      "negative": r["sentiment_negative"]},
    }


COMPARED = ("conversations", "visitors", "messages", "replies", "errors", "handoff_conversations",
            "deflection_rate", "feedback_up", "feedback_down", "satisfaction_rate", "total_tokens", "cost_usd",
            "cost_per_conversation_usd", "ttft_p95_ms", "reply_time_p95_ms")


def change(current: dict, previous: dict) -> dict:
    """Relative change per figure; None when the previous period had nothing to compare with."""
    out = {}
    for key in COMPARED:
        now, before = current[key], previous[key]
        out[key] = round((now - before) / before, 4) if now is not None and before else None
    return out


async def _scope_metrics(conn, tenant_id, rng: Range, chatbot_ids) -> dict:
    since, until = rng.bounds
    totals = (await repo.rollup_totals(conn, tenant_id, since, until, chatbot_ids))[0]
    visitors = (await repo.unique_visitors(conn, tenant_id, since, until, chatbot_ids))[0]["visitors"]
    histograms: dict[str, dict[int, int]] = {}
    for row in await repo.latency_histogram(conn, tenant_id, since, until, chatbot_ids):
        histograms.setdefault(row["metric"], {})[row["idx"]] = int(row["n"])
    return metrics(totals, visitors, histograms)


def _series_point(row, histograms: dict[str, dict[int, int]]) -> dict:
    return {"bucket": row["bucket"].isoformat(), **{c: (float(row[c]) if c == "cost_usd" else row[c])
                                                      for c in ("conversations", "messages", "replies",
                                                                "failed_replies", "handoff_conversations",
                                                                "feedback_up", "feedback_down", "prompt_tokens",
                                                                "completion_tokens", "cost_usd")},
            "ttft_p50_ms": percentile(histograms.get("t", {}), 0.5),
            "reply_time_p50_ms": percentile(histograms.get("r", {}), 0.5),
            "reply_time_p95_ms": percentile(histograms.get("r", {}), 0.95)}


async def summary(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, chatbot_ids=None,
                  granularity: str = "day") -> dict:
    if granularity == "hour" and rng.days > MAX_HOURLY_DAYS:
        raise ApiError(400, "date_range_too_long", f"hourly figures cover at most {MAX_HOURLY_DAYS} days",
                       {"max_days": MAX_HOURLY_DAYS})
    grain = "h" if granularity == "hour" else "d"
    previous = rng.previous()
    async with pool.acquire() as conn:
        current = await _scope_metrics(conn, tenant_id, rng, chatbot_ids)
        before = await _scope_metrics(conn, tenant_id, previous, chatbot_ids)
        series = await repo.rollup_totals(conn, tenant_id, *rng.bounds, chatbot_ids, grain=grain, group_by="bucket")
        latency: dict = {}  # bucket -> metric -> histogram
        for row in await repo.latency_by_bucket(conn, tenant_id, *rng.bounds, chatbot_ids, grain=grain):
            latency.setdefault(row["bucket"], {}).setdefault(row["metric"], {})[row["idx"]] = int(row["n"])
    return {"from": rng.since.isoformat(), "to": rng.until.isoformat(),
            "previous_from": previous.since.isoformat(), "previous_to": previous.until.isoformat(),
            "current": current, "previous": before, "change": change(current, before),
            "granularity": granularity, "series": [_series_point(r, latency.get(r["bucket"], {})) for r in series]}


async def chatbots(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, chatbot_ids=None) -> dict:
    """Per-chatbot performance, busiest first."""
    since, until = rng.bounds
    async with pool.acquire() as conn:
        totals = {r["chatbot_id"]: r for r in await repo.rollup_totals(
            conn, tenant_id, since, until, chatbot_ids, group_by="chatbot_id")}
        visitors = {r["chatbot_id"]: r["visitors"] for r in await repo.unique_visitors(
            conn, tenant_id, since, until, chatbot_ids, by_chatbot=True)}
        histograms: dict = {}
        for row in await repo.latency_histogram(conn, tenant_id, since, until, chatbot_ids, by_chatbot=True):
            histograms.setdefault(row["chatbot_id"], {}).setdefault(row["metric"], {})[row["idx"]] = int(row["n"])
    ids = set(totals) | set(visitors)
    out = [{"chatbot_id": str(cid), **metrics(totals.get(cid), visitors.get(cid, 0), histograms.get(cid, {}))}
           for cid in ids]
    out.sort(key=lambda m: (-m["conversations"], -m["messages"], m["chatbot_id"]))
    return {"from": rng.since.isoformat(), "to": rng.until.isoformat(), "data": out}


async def visitors(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, chatbot_ids=None) -> dict:
    since, until = rng.bounds
    async with pool.acquire() as conn:
        current = await _scope_metrics(conn, tenant_id, rng, chatbot_ids)
        by_day = await repo.rollup_totals(conn, tenant_id, since, until, chatbot_ids, group_by="bucket")
        by_hour = await repo.conversations_by_hour_of_day(conn, tenant_id, since, until, chatbot_ids)
        intents = await repo.top_intents(conn, tenant_id, since, until, chatbot_ids)
    hours = {r["hour"]: int(r["n"]) for r in by_hour}
    return {
        "from": rng.since.isoformat(), "to": rng.until.isoformat(),
        "visitors": current["visitors"], "new_visitors": current["new_visitors"],
        "returning_visitors": current["returning_visitors"],
        "conversations": current["conversations"],
        "conversations_per_visitor": _rate(current["conversations"], current["visitors"]),
        "messages_per_conversation": current["interactions_per_conversation"],
        "by_day": [{"date": r["bucket"].date().isoformat(), "conversations": r["conversations"],
                    "new_visitors": r["new_visitors"], "returning_conversations": r["returning_conversations"],
                    "messages": r["messages"]} for r in by_day],
        "conversations_by_hour_utc": [hours.get(h, 0) for h in range(24)],
        "top_intents": [{"intent": r["intent"], "count": int(r["n"])} for r in intents],
        "sentiment": current["sentiment"],
    }


async def costs(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, chatbot_ids=None) -> dict:
    since, until = rng.bounds
    async with pool.acquire() as conn:
        current = await _scope_metrics(conn, tenant_id, rng, chatbot_ids)
        models = await repo.model_totals(conn, tenant_id, since, until, chatbot_ids)
        by_day = await repo.rollup_totals(conn, tenant_id, since, until, chatbot_ids, group_by="bucket")
    return {
        "from": rng.since.isoformat(), "to": rng.until.isoformat(),
        "cost_usd": current["cost_usd"], "conversations": current["conversations"],
        "cost_per_conversation_usd": current["cost_per_conversation_usd"],
        "cost_per_reply_usd": round(current["cost_usd"] / current["replies"], 6) if current["replies"] else None,
        "prompt_tokens": current["prompt_tokens"], "completion_tokens": current["completion_tokens"],
        "total_tokens": current["total_tokens"],
        "by_model": [{"provider": r["provider"], "model": r["model"], "replies": int(r["replies"]),
                      "cache_hits": int(r["cache_hits"]), "prompt_tokens": int(r["prompt_tokens"]),
                      "completion_tokens": int(r["completion_tokens"]), "cost_usd": round(float(r["cost_usd"]), 6),
                      "cost_per_reply_usd": round(float(r["cost_usd"]) / int(r["replies"]), 6) if r["replies"] else None}
                     for r in models],
        "by_day": [{"date": r["bucket"].date().isoformat(), "cost_usd": round(float(r["cost_usd"]), 6),
                    "prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
                    "conversations": r["conversations"]} for r in by_day],
    }


async def unanswered(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, chatbot_ids=None,
                     limit: int = 20) -> dict:
    since, until = rng.bounds
    async with pool.acquire() as conn:
        rows = await repo.unanswered_questions(conn, tenant_id, since, until, chatbot_ids)
    clusters = clustering.cluster([r["question"] for r in rows])
    by_question: dict[str, list] = {}
    for r in rows:
        by_question.setdefault(r["question"].strip(), []).append(r)
    out = []
    for c in clusters[:limit]:
        chatbot_set = sorted({str(r["chatbot_id"]) for q in c.questions for r in by_question.get(q, [])})
        last = max((r["completed_at"] for q in c.questions for r in by_question.get(q, [])), default=None)
        out.append({"label": c.label, "count": c.count, "chatbot_ids": chatbot_set,
                    "last_asked_at": last.isoformat() if last else None,
                    "questions": [{"text": q, "count": n} for q, n in c.questions.most_common(5)]})
    return {"from": rng.since.isoformat(), "to": rng.until.isoformat(), "total": len(rows),
            "clusters": out}


async def feedback(pool: asyncpg.Pool, tenant_id: uuid.UUID, rng: Range, rating: str, chatbot_ids=None,
                   limit: int = 50) -> dict:
    since, until = rng.bounds
    async with pool.acquire() as conn:
        rows = await repo.rated_replies(conn, tenant_id, since, until, rating, chatbot_ids, limit)
    return {"from": rng.since.isoformat(), "to": rng.until.isoformat(), "data": [
        {"reply_id": str(r["reply_id"]), "chatbot_id": str(r["chatbot_id"]),
         "conversation_id": str(r["conversation_id"]), "rating": r["rating"], "comment": r["rating_comment"] or "",
         "question": r["question"] or "", "answer": r["answer"] or "",
         "citations": [{"title": c.get("title", ""), "url": c.get("url"), "score": c.get("score", 0.0)}
                       for c in (r["citations"] or [])],
         "rated_at": r["rated_at"].isoformat()} for r in rows]}
