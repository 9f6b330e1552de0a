"""Analytics against the running stack: the API's figures equal counts computed independently
from the conversation and ai databases, after real conversations, feedback and handoffs; and a
restart of analytics under load neither loses nor double-counts anything."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from datetime import date, datetime, timedelta, timezone

import asyncpg
import pytest

from tests.e2e.test_chat_turn import wait_until

pytestmark = pytest.mark.e2e

QUESTIONS = ["Do you ship to Canada?", "Do you ship to canada", "Can I pay with bitcoin?",
             "What are your opening hours?", "I want to talk to a human agent please", "How much is delivery?"]


async def _db_figures(tenant_id: str) -> dict:
    """The same figures, counted from the services that own the data."""
    conv = await asyncpg.connect(os.environ["CONVERSATION_DATABASE_URL"])
    ai = await asyncpg.connect(os.environ["AI_DATABASE_URL"])
    try:
        c = await conv.fetchrow(
            "SELECT count(*) AS conversations, count(DISTINCT visitor_id) AS visitors, "
            "count(*) FILTER (WHERE handoff_requested) AS handoffs FROM conversations WHERE tenant_id = $1",
            tenant_id)
        new_visitors = await conv.fetchval("SELECT count(*) FROM visitors WHERE tenant_id = $1", tenant_id)
        m = await conv.fetchrow(
            "SELECT count(*) FILTER (WHERE role = 'visitor') AS messages, "
            "count(*) FILTER (WHERE role = 'assistant' AND status = 'completed') AS replies, "
            "count(*) FILTER (WHERE rating = 'up') AS up, count(*) FILTER (WHERE rating = 'down') AS down, "
            "count(DISTINCT conversation_id) FILTER (WHERE role = 'visitor') AS engaged "
            "FROM messages WHERE tenant_id = $1", tenant_id)
        a = await ai.fetchrow(
            "SELECT coalesce(sum(prompt_tokens), 0) AS prompt_tokens, "
            "coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(cost_usd), 0)::float8 AS cost, "
            "count(*) FILTER (WHERE cached) AS cache_hits, count(*) FILTER (WHERE status = 'completed') AS replies "
            "FROM replies WHERE tenant_id = $1", tenant_id)
    finally:
        await conv.close()
        await ai.close()
    return {"conversations": c["conversations"], "visitors": c["visitors"], "new_visitors": new_visitors,
            "handoff_conversations": c["handoffs"], "engaged_conversations": m["engaged"],
            "messages": m["messages"], "replies": m["replies"], "feedback_up": m["up"], "feedback_down": m["down"],
            "prompt_tokens": a["prompt_tokens"], "completion_tokens": a["completion_tokens"],
            "cost_usd": a["cost"], "cache_hits": a["cache_hits"], "ai_replies": a["replies"]}


def _from_api(metrics: dict) -> dict:
    keys = ("conversations", "visitors", "new_visitors", "handoff_conversations", "engaged_conversations",
            "messages", "replies", "feedback_up", "feedback_down", "prompt_tokens", "completion_tokens",
            "cost_usd", "cache_hits")
    return {k: metrics[k] for k in keys}


def _today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


async def _summary(api, key: str, **params) -> dict:
    status, body = await api.call("GET", "/api/v1/analytics/summary", key=key,
                                  params={"from": _today(), "to": _today(), **params})
    assert status == 200, body
    return body


async def _figures_match(api, key: str, tenant_id: str, timeout: float = 60) -> tuple[dict, dict]:
    """Poll until the API's figures equal the databases' (the events are asynchronous)."""
    last: dict = {}

    async def same():
        expected = await _db_figures(tenant_id)
        got = _from_api((await _summary(api, key))["current"])
        expected_cmp = {k: v for k, v in expected.items() if k != "ai_replies"}
        got_cmp = {**got, "cost_usd": round(got["cost_usd"], 6)}
        expected_cmp["cost_usd"] = round(expected_cmp["cost_usd"], 6)
        last.update(expected=expected_cmp, got=got_cmp)
        return (expected_cmp, got) if got_cmp == expected_cmp else None

    try:
        return await wait_until(same, timeout=timeout, what="analytics figures equal the databases'")
    except AssertionError:
        raise AssertionError(f"figures differ: {last}") from None


async def _turns(api, embed: str, conv: dict, texts: list[str], prefix: str) -> list[dict]:
    """Send ``texts`` and wait for their replies; returns the conversation's replies so far."""
    before = len([m for m in await api.transcript(embed, conv) if m["role"] == "assistant"])
    for i, text in enumerate(texts):
        status, body = await api.say(embed, conv, text, f"{prefix}-{i}")
        assert status == 202, body

    async def done():
        messages = await api.transcript(embed, conv)
        replies = [m for m in messages if m["role"] == "assistant"]
        return replies if len(replies) == before + len(texts) and all(
            m["status"] in ("completed", "failed") for m in replies) else None
    return await wait_until(done, timeout=60, what="replies")


async def test_api_figures_equal_the_other_services_counts(api, stack, bot):
    key, embed, tenant_id = bot["key"], bot["embed_id"], bot["tenant"]["tenant"]["id"]
    second = await api.chatbot(key, name="Second")
    # conversations: a returning visitor, a handoff, feedback (one rating changed), a second bot
    first = await api.conversation(embed)
    returning = await api.call("POST", f"/api/widget/v1/{embed}/conversations",
                               json={"visitor_id": first["visitor_id"]})
    assert returning[0] == 201
    returning = returning[1]
    other = await api.conversation(second["embed_id"])
    idle = await api.conversation(embed)  # started, never wrote
    assert idle["conversation_id"]
    replies = await _turns(api, embed, first, QUESTIONS[:4], "a")
    handoff_replies = await _turns(api, embed, returning, QUESTIONS[3:5], "b")
    await _turns(api, second["embed_id"], other, QUESTIONS[:2] + QUESTIONS[5:], "c")
    await _turns(api, embed, first, ["Do you ship to Canada?"], "a-again")  # the same question again: cached
    # the visitor who asked for a person presses "Talk to a human" (twice): no AI turn, no quota
    status, usage_before = await api.call("GET", "/api/v1/tenant/usage", key=key)
    handoff = f"/api/widget/v1/{embed}/conversations/{returning['conversation_id']}/handoff"
    for _ in range(2):
        status, body = await api.call("POST", handoff, key=returning["visitor_token"])
        assert status == 202 and body["status"] == "requested", body
    assert (await api.call("GET", "/api/v1/tenant/usage", key=key))[1]["messages"] == usage_before["messages"]

    def feedback_path(embed_id, conv, reply):
        return f"/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/replies/{reply['id']}/feedback"

    for reply, rating in ((replies[0], "up"), (replies[1], "down"), (replies[2], "up"),
                          (handoff_replies[0], "down")):
        status, body = await api.call("POST", feedback_path(embed, first if reply in replies else returning, reply),
                                      key=(first if reply in replies else returning)["visitor_token"],
                                      json={"rating": rating, "comment": "meh" if rating == "down" else ""})
        assert status == 202, body
    await asyncio.sleep(0.01)  # distinct occurred_at for the changed rating
    status, _ = await api.call("POST", feedback_path(embed, first, replies[2]), key=first["visitor_token"],
                               json={"rating": "down", "comment": "changed my mind"})
    assert status == 202
    # another visitor cannot rate this conversation's replies, nor a reply of another conversation
    status, _ = await api.call("POST", feedback_path(embed, first, replies[0]), key=returning["visitor_token"],
                               json={"rating": "down"})
    assert status in (401, 403)
    status, _ = await api.call("POST", feedback_path(embed, returning, replies[0]), key=returning["visitor_token"],
                               json={"rating": "down"})
    assert status == 404

    expected, got = await _figures_match(api, key, tenant_id)
    assert expected["conversations"] == 4 and expected["handoff_conversations"] == 1
    assert (await _summary(api, key))["current"]["handoff_requests"] == 2
    status, transcript = await api.call("GET", f"/api/v1/conversations/{returning['conversation_id']}", key=key)
    assert transcript["conversation"]["handoff_requested"] is True
    assert len(transcript["messages"]) == 4  # two turns: the handoff added no message and no reply
    assert expected["feedback_down"] == 3 and expected["feedback_up"] == 1 and expected["visitors"] == 3

    # the conversation service stored the ratings the API counted
    conv_db = await asyncpg.connect(os.environ["CONVERSATION_DATABASE_URL"])
    try:
        rating = await conv_db.fetchval("SELECT rating FROM messages WHERE id = $1", replies[2]["id"])
    finally:
        await conv_db.close()
    assert rating == "down"

    body = await _summary(api, key)
    current = body["current"]
    assert current["deflection_rate"] == round((3 - 1) / 3, 4)
    assert current["satisfaction_rate"] == 0.25 and current["returning_visitors"] == 0
    assert current["reply_time_p95_ms"] is not None and current["ttft_p50_ms"] is not None
    assert body["previous"]["conversations"] == 0 and body["change"]["conversations"] is None

    # per chatbot
    status, page = await api.call("GET", "/api/v1/analytics/chatbots", key=key)
    assert status == 200
    by_id = {b["chatbot_id"]: b for b in page["data"]}
    assert by_id[bot["chatbot"]["id"]]["conversations"] == 3 and by_id[second["id"]]["conversations"] == 1
    assert by_id[second["id"]]["name"] == "Second"
    status, one = await api.call("GET", f"/api/v1/analytics/chatbots/{second['id']}", key=key)
    assert status == 200 and one["current"]["messages"] == 3
    status, visitors = await api.call("GET", "/api/v1/analytics/visitors", key=key,
                                      params={"chatbot_id": bot["chatbot"]["id"]})
    assert status == 200 and visitors["visitors"] == 2 and visitors["conversations"] == 3  # first + idle
    assert any(i["intent"] == "asks_for_human" for i in visitors["top_intents"])
    status, costs = await api.call("GET", "/api/v1/analytics/costs", key=key)
    assert status == 200 and sum(m["replies"] for m in costs["by_model"]) == expected["replies"]

    # quality reports
    status, unanswered = await api.call("GET", "/api/v1/analytics/unanswered", key=key)
    assert status == 200, unanswered
    top = unanswered["clusters"][0]
    assert "canada" in top["label"].lower() and top["count"] >= 3, unanswered
    status, down = await api.call("GET", "/api/v1/analytics/feedback", key=key, params={"rating": "down"})
    assert status == 200 and len(down["data"]) == 3
    changed = next(d for d in down["data"] if d["reply_id"] == replies[2]["id"])
    # messages sent back to back may be handled in either order: the question of a reply is the
    # visitor message stored just before it
    transcript = await api.transcript(embed, first)
    asked = {m["id"]: transcript[i - 1]["text"] for i, m in enumerate(transcript) if m["role"] == "assistant"}
    assert changed["comment"] == "changed my mind" and changed["question"] == asked[replies[2]["id"]]
    assert changed["answer"]

    # exports stream every conversation
    async with api.http.get(f"{api.base}/api/v1/analytics/export/conversations.csv",
                            headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert len(rows) == 4 and sum(int(r["messages"]) for r in rows) == expected["messages"]
    async with api.http.get(f"{api.base}/api/v1/analytics/export/metrics.jsonl",
                            headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200
        lines = (await resp.text()).splitlines()
    assert sum(json.loads(line)["replies"] for line in lines) == expected["replies"]
    status, exported = await api.call("GET", "/api/v1/analytics/export/conversations.json", key=key)
    assert status == 200 and sorted(c["conversation_id"] for c in exported) == sorted(r["conversation_id"] for r in rows)

    # the analytics process exports its queue depths and consumption for Prometheus
    async with api.http.get(f"http://127.0.0.1:{os.environ['ANALYTICS_PORT']}/metrics") as resp:
        exposition = await resp.text()
    assert 'queue_depth_messages{queue="AiReplyCompletedEvent.analytics",service="analytics"}' in exposition
    assert 'events_consumed_total{event="FeedbackGivenEvent",service="analytics"}' in exposition


async def test_bad_ranges_and_other_tenants_chatbots_get_a_clear_4xx(api, stack, bot):
    key = bot["key"]
    other = await api.tenant(stack.admin_key, "Other")
    other_bot = await api.chatbot(other["api_key"]["key"])
    today = date.today()
    cases = [
        ({"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()}, 400, "inverted_date_range"),
        ({"from": (today - timedelta(days=400)).isoformat(), "to": today.isoformat()}, 400, "date_range_too_long"),
        ({"from": "last tuesday"}, 422, "validation_error"),
        ({"chatbot_id": other_bot["id"]}, 404, "not_found"),
        ({"chatbot_id": "00000000-0000-0000-0000-000000000001"}, 404, "not_found"),
    ]
    for params, status_wanted, code in cases:
        for path in ("summary", "visitors", "costs", "unanswered", "export/conversations.csv"):
            status, body = await api.call("GET", f"/api/v1/analytics/{path}", key=key, params=params)
            assert status == status_wanted and body["error"]["code"] == code, (path, params, body)
    status, body = await api.call("GET", f"/api/v1/analytics/chatbots/{other_bot['id']}", key=key)
    assert status == 404
    status, body = await api.call("PUT", "/api/v1/analytics/settings", key=key, json={"retention_days": 0})
    assert status == 422
    status, body = await api.call("PUT", "/api/v1/analytics/settings", key=key, json={"retention_days": 90})
    assert status == 200 and body["retention_days"] == 90
    status, body = await api.call("GET", "/api/v1/analytics/settings", key=key)
    assert body["retention_days"] == 90


async def test_a_restart_of_analytics_under_load_loses_and_doubles_nothing(api, stack, bot):
    key, embed, tenant_id = bot["key"], bot["embed_id"], bot["tenant"]["tenant"]["id"]

    async def visitor(i: int) -> None:
        conv = await api.conversation(embed)
        for j in range(3):
            status, body = await api.say(embed, conv, f"Question {j} from visitor {i}?", f"r{i}-{j}")
            assert status == 202, body
            await asyncio.sleep(0.05)

    load = asyncio.gather(*(visitor(i) for i in range(12)))
    await asyncio.sleep(0.3)
    restarted = await asyncio.to_thread(stack.ctl, "restart", "analytics")
    assert "started" in restarted, restarted
    await load
    await asyncio.to_thread(stack.wait_healthy, 60)

    async def all_answered():
        expected = await _db_figures(tenant_id)
        return expected["replies"] == expected["messages"] == 36
    await wait_until(all_answered, timeout=90, what="every reply")
    expected, _ = await _figures_match(api, key, tenant_id, timeout=90)
    assert expected["conversations"] == 12 and expected["messages"] == 36

    # and each event is stored exactly once
    analytics = await asyncpg.connect(os.environ["ANALYTICS_DATABASE_URL"])
    try:
        total, distinct = await analytics.fetchrow(
            "SELECT count(*), count(DISTINCT event_id) FROM events WHERE tenant_id = $1", tenant_id)
    finally:
        await analytics.close()
    assert total == distinct and total >= 12 + 36 * 3
