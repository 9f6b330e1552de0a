"""Ingestion, rollups, reports, exports, retention and dead-lettering, on real Postgres and RabbitMQ."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import aio_pika

from common import events as ev
from common.bus import dead_letter_queue
from common.topology import queue_name
from common.web import POOL
from services.analytics import ingest, maintenance
from services.analytics import repository as repo
from tests.integration.analytics.conftest import Scenario


async def test_each_event_counts_once_even_when_redelivered(analytics):
    s = Scenario()
    conv_a, started_a = s.start()
    conv_b, started_b = s.start(returning=True)
    r1, turn1 = s.turn(conv_a, "Where is my parcel?", cost=0.002, ttft=40, total=300)
    r2, turn2 = s.turn(conv_a, "I want to talk to a human", intent="asks_for_human", answered=False)
    r3, turn3 = s.turn(conv_b, "Do you ship to Mars?", answered=False, cached=True, cost=0.0)
    # the visitor asks for a person twice (the button, then again): two requests, one conversation
    events = [started_a, started_b, *turn1, *turn2, *turn3, s.handoff(conv_a), s.handoff(conv_a),
              s.feedback(conv_a, r1, "up"), s.feedback(conv_b, r3, "down", "useless")]
    await analytics.publish(*events)
    await analytics.publish(*events)  # every event a second time: a redelivery
    await analytics.until_stored(len(events))

    status, body = await analytics.get("summary", tenant_id=str(s.tenant_id), **{"from": str(s.at.date())},
                                       to=str(s.at.date()))
    assert status == 200, body
    m = body["current"]
    assert (m["conversations"], m["new_visitors"], m["visitors"], m["messages"], m["replies"]) == (2, 1, 2, 3, 3)
    assert (m["feedback_up"], m["feedback_down"], m["satisfaction_rate"]) == (1, 1, 0.5)
    assert (m["handoff_conversations"], m["handoff_requests"], m["engaged_conversations"]) == (1, 2, 2)
    assert m["deflection_rate"] == 0.5 and m["cache_hits"] == 1 and m["unanswered"] == 1
    assert m["prompt_tokens"] == 300 and m["completion_tokens"] == 60
    assert abs(m["cost_usd"] - 0.003) < 1e-9 and abs(m["cost_per_conversation_usd"] - 0.0015) < 1e-9
    assert 38 <= m["ttft_p50_ms"] <= 53 and 380 <= m["reply_time_p95_ms"] <= 420
    assert body["previous"]["conversations"] == 0 and body["change"]["conversations"] is None
    assert await analytics.stored() == len(events)
    _, hourly = await analytics.get("summary", tenant_id=str(s.tenant_id), granularity="hour")
    assert [p["bucket"] for p in hourly["series"]] == [s.at.replace(minute=0, second=0, microsecond=0).isoformat()]
    assert hourly["series"][0]["replies"] == 3
    # the series carries each bucket's response times too (the console charts them per day)
    assert 38 <= hourly["series"][0]["ttft_p50_ms"] <= 53 and 380 <= hourly["series"][0]["reply_time_p95_ms"] <= 420
    status, body = await analytics.get("summary", tenant_id=str(s.tenant_id), granularity="hour",
                                       **{"from": "2026-01-01", "to": "2026-03-01"})
    assert status == 400 and body["error"]["code"] == "date_range_too_long"


async def test_a_changed_rating_moves_from_up_to_down_and_an_older_one_is_ignored(analytics):
    s = Scenario()
    conv, started = s.start()
    reply_id, turn = s.turn(conv, "What are your opening hours?")
    later = s.at + timedelta(seconds=5)
    await analytics.publish(started, *turn, s.feedback(conv, reply_id, "up"),
                            s.feedback(conv, reply_id, "down", "wrong hours", at=later),
                            s.feedback(conv, reply_id, "up", at=s.at - timedelta(seconds=5)))
    await analytics.until_stored(5)
    _, body = await analytics.get("summary", tenant_id=str(s.tenant_id))
    assert (body["current"]["feedback_up"], body["current"]["feedback_down"]) == (0, 1)
    _, report = await analytics.get("feedback", tenant_id=str(s.tenant_id), rating="down")
    [item] = report["data"]
    assert item["question"] == "What are your opening hours?" and item["comment"] == "wrong hours"
    assert item["answer"].startswith("answer to") and item["citations"][0]["title"] == "FAQ"


async def test_unanswered_questions_are_clustered_with_counts(analytics):
    s = Scenario()
    conv, started = s.start()
    questions = ["Do you ship to Canada?", "do you ship to canada", "Shipping to Canada?",
                 "Can I pay with bitcoin?", "Can I pay with Bitcoin?", "What is the airspeed of a swallow?"]
    events = [started]
    for q in questions:
        events += s.turn(conv, q, answered=False)[1]
    events += s.turn(conv, "hello", answered=False, intent="greeting")[1]  # not a question
    events += s.turn(conv, "Where are you?", answered=True)[1]
    await analytics.publish(*events)
    await analytics.until_stored(len(events))
    _, report = await analytics.get("unanswered", tenant_id=str(s.tenant_id))
    assert report["total"] == 6
    counts = [(c["label"], c["count"]) for c in report["clusters"]]
    assert counts[0][1] == 3 and "canada" in counts[0][0].lower()
    assert counts[1][1] == 2 and "bitcoin" in counts[1][0].lower()
    assert len(counts) == 3


async def test_per_chatbot_visitors_costs_and_exports(analytics):
    s = Scenario()
    other_bot = Scenario()
    other_bot.tenant_id = s.tenant_id
    visitor = uuid.uuid4()
    conv1, st1 = s.start(visitor)
    conv2, st2 = s.start(visitor, returning=True)
    conv3, st3 = other_bot.start()
    events = [st1, st2, st3, *s.turn(conv1, "a?", cost=0.01, model="gpt-4o-mini")[1],
              *s.turn(conv2, "b?", cost=0.02, model="gpt-4o")[1], *other_bot.turn(conv3, "c?", cost=0.5)[1]]
    await analytics.publish(*events)
    await analytics.until_stored(len(events))
    tenant = str(s.tenant_id)
    _, bots = await analytics.get("chatbots", tenant_id=tenant)
    by_id = {b["chatbot_id"]: b for b in bots["data"]}
    assert by_id[str(s.chatbot_id)]["conversations"] == 2 and by_id[str(s.chatbot_id)]["visitors"] == 1
    assert by_id[str(other_bot.chatbot_id)]["conversations"] == 1
    _, visitors = await analytics.get("visitors", tenant_id=tenant, chatbot_id=str(s.chatbot_id))
    assert (visitors["visitors"], visitors["new_visitors"], visitors["conversations"]) == (1, 1, 2)
    assert sum(visitors["conversations_by_hour_utc"]) == 2
    _, costs = await analytics.get("costs", tenant_id=tenant, chatbot_id=str(s.chatbot_id))
    assert [m["model"] for m in costs["by_model"]] == ["gpt-4o", "gpt-4o-mini"]
    assert abs(costs["cost_usd"] - 0.03) < 1e-9 and abs(costs["cost_per_conversation_usd"] - 0.015) < 1e-9

    resp = await analytics.client.get("/internal/analytics/export/conversations",
                                      params={"tenant_id": tenant, "format": "csv"})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {r["conversation_id"] for r in rows} == {str(conv1), str(conv2), str(conv3)}
    assert sum(float(r["cost_usd"]) for r in rows) == 0.53
    resp = await analytics.client.get("/internal/analytics/export/metrics",
                                      params={"tenant_id": tenant, "format": "jsonl", "granularity": "hour"})
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert sum(line["conversations"] for line in lines) == 3
    resp = await analytics.client.get("/internal/analytics/export/conversations",
                                      params={"tenant_id": tenant, "format": "json"})
    assert resp.headers["Content-Type"].startswith("application/json")
    assert len(json.loads(await resp.text())) == 3
    resp = await analytics.client.get("/internal/analytics/export/conversations",
                                      params={"tenant_id": str(uuid.uuid4()), "format": "json"})
    assert json.loads(await resp.text()) == []


async def test_bad_date_ranges_get_a_clear_400(analytics):
    tenant = str(uuid.uuid4())
    for params, code in (({"from": "2026-05-02", "to": "2026-05-01"}, "inverted_date_range"),
                         ({"from": "2024-01-01", "to": "2026-01-01"}, "date_range_too_long"),
                         ({"from": "yesterday"}, "invalid_date"),
                         ({"from": "0001-01-01", "to": "0001-01-02"}, "date_out_of_range")):
        status, body = await analytics.get("summary", tenant_id=tenant, **params)
        assert status == 400 and body["error"]["code"] == code, (params, body)


async def test_a_malformed_event_is_dead_lettered_with_a_reason_and_the_consumer_goes_on(analytics):
    s = Scenario()
    conv, started = s.start()
    async with await aio_pika.connect(analytics.vhost) as conn:
        channel = await conn.channel()
        exchange = await channel.get_exchange("ConversationStartedEvent")
        await exchange.publish(aio_pika.Message(b'{"tenant_id": "not a uuid"}', type="ConversationStartedEvent"),
                               routing_key="x")
        await analytics.publish(started)
        await analytics.until_stored(1)
        dlq = await channel.declare_queue(dead_letter_queue(queue_name(ev.ConversationStartedEvent, "analytics")),
                                          passive=True)
        message = await dlq.get(timeout=5)
        assert "malformed event" in message.headers["x-dead-letter-reason"]
    _, body = await analytics.get("summary", tenant_id=str(s.tenant_id))
    assert body["current"]["conversations"] == 1


async def test_partitions_are_made_ahead_and_old_months_dropped_and_tenant_retention_applies(analytics):
    pool = analytics.client.app[POOL]
    cache = ingest.PartitionCache()
    now = datetime.now(timezone.utc)
    await maintenance.ensure_partitions(pool, cache, ahead=3)
    names = {name for name, _ in await repo.partitions(analytics.db)}
    month = repo.month_of(now)
    for _ in range(4):
        assert repo.partition_name(month) in names
        month = repo.next_month(month)

    old = Scenario(at=now - timedelta(days=800))
    conv, started = old.start()
    await analytics.publish(started, *old.turn(conv, "old question?")[1])
    recent = Scenario(at=now - timedelta(days=40))
    conv2, started2 = recent.start()
    await analytics.publish(started2, *recent.turn(conv2, "recent question?")[1])
    await analytics.until_stored(6)
    old_partition = repo.partition_name(repo.month_of(old.at))
    assert old_partition in {n for n, _ in await repo.partitions(analytics.db)}

    dropped = await maintenance.drop_expired_partitions(pool, cache, max_days=400)
    assert old_partition in dropped and await analytics.stored() == 3

    await analytics.db.execute("INSERT INTO tenant_settings (tenant_id, retention_days) VALUES ($1, 30)",
                               recent.tenant_id)
    assert await maintenance.purge_tenants(pool, default_days=395) > 0
    assert await analytics.stored() == 0
    # figures stay: rollups hold no visitor text
    day = recent.at.date()
    _, body = await analytics.get("summary", tenant_id=str(recent.tenant_id), **{"from": str(day)}, to=str(day))
    assert body["current"]["conversations"] == 1 and body["current"]["messages"] == 1


async def test_metrics_show_queue_depth_consumption_and_requests(analytics):
    s = Scenario()
    conv, started = s.start()
    await analytics.publish(started)
    await analytics.until_stored(1)
    await analytics.get("summary", tenant_id=str(s.tenant_id))
    deadline = time.monotonic() + 15
    while True:
        text = await (await analytics.client.get("/metrics")).text()
        wanted = ['queue_depth_messages{queue="ConversationStartedEvent.analytics",service="analytics"}',
                  'queue_depth_messages{queue="ConversationStartedEvent.analytics.dlq",service="analytics"}',
                  'events_consumed_total{event="ConversationStartedEvent",service="analytics"}',
                  'http_requests_total{method="GET",route="/internal/analytics/summary",service="analytics"']
        if all(w in text for w in wanted):
            break
        assert time.monotonic() < deadline, [w for w in wanted if w not in text]
        await asyncio.sleep(0.2)


async def test_an_event_the_database_refuses_is_dead_lettered_alone(analytics):
    s = Scenario()
    conv, started = s.start()
    _, good_turn = s.turn(conv, "A fine question?")
    _, bad_turn = s.turn(conv, "A question with a NUL \x00 inside?")  # Postgres text cannot hold it
    await analytics.publish(started, *good_turn, bad_turn[0])
    await analytics.until_stored(3)
    async with await aio_pika.connect(analytics.vhost) as conn:
        channel = await conn.channel()
        dlq = await channel.declare_queue(dead_letter_queue(queue_name(ev.AiReplyRequestedEvent, "analytics")),
                                          passive=True)
        deadline = time.monotonic() + 20
        while (message := await dlq.get(fail=False)) is None:
            assert time.monotonic() < deadline, "the bad event was not dead-lettered"
            await asyncio.sleep(0.1)
        assert "handler failed" in message.headers["x-dead-letter-reason"]
    _, body = await analytics.get("summary", tenant_id=str(s.tenant_id))
    assert (body["current"]["conversations"], body["current"]["messages"], body["current"]["replies"]) == (1, 1, 1)
