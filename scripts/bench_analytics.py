"""Analytics benchmarks: dashboard query latency over many events, consumer ingestion rate,
disk per million events.

    python -m scripts.bench_analytics [--events 10000000] [--ingest 4000]

or from Python (``make bench``): ``markdown = scripts.bench_analytics.run()``.

Needs ``POSTGRES_URL`` (a superuser URL) and ``AMQP_URL`` (from .data/test.env; read from there
when unset). Everything happens in a throwaway database and a throwaway RabbitMQ vhost,
dropped at the end.

- **Load**: synthetic events are generated inside Postgres (``INSERT ... SELECT`` over
  ``generate_series``, the server-side equivalent of ``COPY``: no row crosses the wire) into the
  real partitioned ``events`` table: 90 days, 200 tenants with 3 chatbots each, a realistic mix
  of event types and payloads. The rollups are then built from those events in one pass (the
  same rows the incremental consumer would have written).
- **Queries**: the service's own report functions (``reports.summary`` with the previous-period
  comparison, ``reports.chatbots``) over random tenants and 30-day ranges; p50/p95.
- **Ingestion**: N events (conversation starts, requested/completed replies, feedback) are
  published to the throwaway vhost first, then the real analytics consumer (every event class
  on its own queue; events stored with their rollup upserts in small batches, one
  transaction per batch, each acked after its batch committed) is started and timed
  until every event is stored.
- **Disk**: the size of the events partitions (heap, TOAST, indexes) per million events.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from common import events as ev
from common.bus import Bus
from common.db import create_pool
from common.handlers import subscribe_all
from services.analytics import handlers, ingest, maintenance, reports
from services.analytics.app import MIGRATIONS
from services.analytics.repository import ensure_partition, next_month
from services.analytics.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TENANTS, BOTS_PER_TENANT, DAYS = 200, 3, 90
DEFAULT_EVENTS = int(os.environ.get("BENCH_ANALYTICS_EVENTS", 10_000_000))
DEFAULT_INGEST = int(os.environ.get("BENCH_ANALYTICS_INGEST", 4_000))


def _env() -> None:
    if os.environ.get("POSTGRES_URL") and os.environ.get("AMQP_URL"):
        return
    env_file = ROOT / ".data" / "test.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                os.environ.setdefault(key.strip(), value.strip())


def _db_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


class Scratch:
    """A throwaway database (and vhost) that always goes away."""

    def __init__(self) -> None:
        self.name = f"an_bench_{secrets.token_hex(5)}"
        self.admin_url = os.environ["POSTGRES_URL"]
        self.url = _db_url(self.admin_url, self.name)

    async def __aenter__(self) -> str:
        admin = await asyncpg.connect(self.admin_url)
        await admin.execute(f'CREATE DATABASE "{self.name}"')
        await admin.close()
        return self.url

    async def __aexit__(self, *exc) -> None:
        admin = await asyncpg.connect(self.admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()


# --- load ------------------------------------------------------------------------------------

# One chat turn makes ~5 durable events; the mix below follows that shape.
GENERATE = """
INSERT INTO events (event_id, occurred_at, event_type, tenant_id, chatbot_id, conversation_id, correlation_id,
                    payload)
SELECT gen_random_uuid(), ts, kind, ($1::uuid[])[1 + bot / $3::int], ($7::uuid[])[1 + bot], conv, md5(i::text),
       CASE kind
         WHEN 'AiReplyCompletedEvent' THEN jsonb_build_object(
             'text', repeat('An answer from the knowledge base. ', 6), 'intent', 'question',
             'visitor_intent', 'question', 'provider', 'openai', 'model', 'gpt-4o-mini',
             'usage', jsonb_build_object('prompt_tokens', 400 + i % 300, 'completion_tokens', 80 + i % 90,
                                         'cost_usd', 0.0002 + (i % 50) / 100000.0, 'cached', i % 10 = 0),
             'timings', jsonb_build_object('ttft_ms', 200 + i % 700, 'total_ms', 900 + i % 3000),
             'answered_from_knowledge', i % 7 <> 0, 'citations', '[]'::jsonb)
         WHEN 'AiReplyRequestedEvent' THEN jsonb_build_object('text', 'Do you ship to country ' || i % 97 || '?',
             'reply_seq', 2, 'history', '[]'::jsonb)
         WHEN 'VisitorMessageReceivedEvent' THEN jsonb_build_object('text', 'Do you ship to country ' || i % 97 || '?',
             'client_message_id', i::text, 'channel', 'widget')
         WHEN 'ConversationStartedEvent' THEN jsonb_build_object('returning_visitor', i % 4 = 0)
         ELSE jsonb_build_object('behaviour', 'explain', 'clip', 'Talk')
       END
FROM (
    SELECT i, ((i / 5) % ($2::int * $3::int))::int AS bot,
           now() - make_interval(secs => (i * 7919 % ($4::int * 86400))::float8) AS ts,
           md5((i / 10)::text)::uuid AS conv,
           (ARRAY['ConversationStartedEvent', 'VisitorMessageReceivedEvent', 'AiReplyRequestedEvent',
                  'AiReplyCompletedEvent', 'AvatarAnimationSelectedEvent'])[1 + i % 5] AS kind
    FROM generate_series($5::bigint, $6::bigint) AS i) g
"""

# The rollups the consumer would have written for those events, built in one pass.
BACKFILL = """
INSERT INTO rollups (tenant_id, chatbot_id, grain, bucket, conversations, new_visitors, messages, replies,
                     engaged_conversations, cache_hits, answered_from_knowledge, unanswered, prompt_tokens,
                     completion_tokens, cost_usd, feedback_up, feedback_down, handoff_conversations)
SELECT tenant_id, chatbot_id, g.grain, date_trunc(CASE g.grain WHEN 'h' THEN 'hour' ELSE 'day' END, occurred_at),
       count(*) FILTER (WHERE event_type = 'ConversationStartedEvent'),
       count(*) FILTER (WHERE event_type = 'ConversationStartedEvent' AND NOT (payload->>'returning_visitor')::bool),
       count(*) FILTER (WHERE event_type = 'AiReplyRequestedEvent'),
       count(*) FILTER (WHERE event_type = 'AiReplyCompletedEvent'),
       count(*) FILTER (WHERE event_type = 'ConversationStartedEvent'),
       count(*) FILTER (WHERE (payload->'usage'->>'cached')::bool),
       count(*) FILTER (WHERE (payload->>'answered_from_knowledge')::bool),
       count(*) FILTER (WHERE NOT (payload->>'answered_from_knowledge')::bool),
       coalesce(sum((payload->'usage'->>'prompt_tokens')::int), 0),
       coalesce(sum((payload->'usage'->>'completion_tokens')::int), 0),
       coalesce(sum((payload->'usage'->>'cost_usd')::numeric), 0),
       count(*) FILTER (WHERE event_type = 'AiReplyCompletedEvent') / 20,
       count(*) FILTER (WHERE event_type = 'AiReplyCompletedEvent') / 60,
       count(*) FILTER (WHERE event_type = 'ConversationStartedEvent') / 8
FROM events, (VALUES ('h'), ('d')) AS g(grain)
GROUP BY tenant_id, chatbot_id, g.grain, 4
"""

LATENCY_BACKFILL = """
INSERT INTO rollup_latency (tenant_id, chatbot_id, grain, bucket, metric, idx, n)
SELECT tenant_id, chatbot_id, 'd', date_trunc('day', occurred_at), m.metric,
       least(200, floor(ln(greatest(1, (payload->'timings'->>m.field)::float8)) / ln(1.1)))::smallint, count(*)
FROM events, (VALUES ('t', 'ttft_ms'), ('r', 'total_ms')) AS m(metric, field)
WHERE event_type = 'AiReplyCompletedEvent'
GROUP BY 1, 2, 4, 5, 6
"""

VISITOR_BACKFILL = """
INSERT INTO visitor_days (tenant_id, day, chatbot_id, visitor_id)
SELECT DISTINCT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, chatbot_id, conversation_id
FROM events WHERE event_type = 'ConversationStartedEvent'
"""


async def _load(url: str, count: int, batch: int = 1_000_000) -> dict:
    pool = await create_pool(url, migrations=MIGRATIONS, max_size=4)
    try:
        now = datetime.now(timezone.utc)
        cache = ingest.PartitionCache()
        async with pool.acquire() as conn:
            month = (now - timedelta(days=DAYS + 31)).date().replace(day=1)
            while month <= now.date():
                await ensure_partition(conn, month)
                month = next_month(month)
        await maintenance.ensure_partitions(pool, cache, ahead=1)
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute("SET synchronous_commit = off")
            tenant_ids = [uuid.uuid4() for _ in range(TENANTS)]
            bot_ids = [uuid.uuid4() for _ in range(TENANTS * BOTS_PER_TENANT)]
            done = 0
            while done < count:
                n = min(batch, count - done)
                await conn.execute(GENERATE, tenant_ids, TENANTS, BOTS_PER_TENANT, DAYS, done, done + n - 1,
                                   bot_ids)
                done += n
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        async with pool.acquire() as conn:
            await conn.execute(BACKFILL)
            await conn.execute(LATENCY_BACKFILL)
            await conn.execute(VISITOR_BACKFILL)
            await conn.execute("VACUUM ANALYZE")
        rollup_s = time.perf_counter() - started
        async with pool.acquire() as conn:
            size = await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events'")
            rollup_rows = await conn.fetchval("SELECT count(*) FROM rollups")
            rollup_size = await conn.fetchval(
                "SELECT pg_total_relation_size('rollups') + pg_total_relation_size('rollup_latency') "
                "+ pg_total_relation_size('visitor_days')")
            tenants = [r["tenant_id"] for r in await conn.fetch("SELECT DISTINCT tenant_id FROM rollups")]
        latencies = await _queries(pool, tenants)
        return {"events": count, "load_s": load_s, "rollup_s": rollup_s, "bytes": int(size),
                "rollup_rows": rollup_rows, "rollup_bytes": int(rollup_size), **latencies}
    finally:
        await pool.close()


async def _queries(pool: asyncpg.Pool, tenants: list, rounds: int = 60) -> dict:
    rng = random.Random(7)
    today = datetime.now(timezone.utc).date()
    timings: dict[str, list[float]] = {"summary": [], "chatbots": []}
    for _ in range(rounds):
        tenant = rng.choice(tenants)
        end = today - timedelta(days=rng.randint(0, 45))
        window = reports.Range(end - timedelta(days=29), end)
        started = time.perf_counter()
        await reports.summary(pool, tenant, window)
        timings["summary"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await reports.chatbots(pool, tenant, window)
        timings["chatbots"].append((time.perf_counter() - started) * 1000)
    out = {}
    for name, values in timings.items():
        values.sort()
        out[f"{name}_p50_ms"] = statistics.median(values)
        out[f"{name}_p95_ms"] = values[int(0.95 * (len(values) - 1))]
    return out


# --- ingestion -------------------------------------------------------------------------------

def _vhost() -> tuple[str, str]:
    name = f"an_bench_{secrets.token_hex(5)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    user = urlsplit(os.environ["AMQP_URL"]).username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
                   check=True, capture_output=True)
    return name, urlunsplit(urlsplit(os.environ["AMQP_URL"])._replace(path=f"/{name}"))


def _turn_events(n: int) -> list[ev.Event]:
    """Conversations of three turns with feedback: the event mix a real day has."""
    tenant, bot = uuid.uuid4(), uuid.uuid4()
    snapshot = ev.ChatbotSnapshot(chatbot_id=bot, name="bench")
    out: list[ev.Event] = []
    while len(out) < n:
        conv = uuid.uuid4()
        out.append(ev.ConversationStartedEvent(tenant_id=tenant, chatbot_id=bot, conversation_id=conv,
                                               visitor_id=uuid.uuid4()))
        for seq in range(3):
            reply = uuid.uuid4()
            ids = dict(tenant_id=tenant, chatbot_id=bot, conversation_id=conv, reply_id=reply, reply_seq=seq * 2 + 2)
            req = ev.AiReplyRequestedEvent(**ids, visitor_message_id=uuid.uuid4(), text=f"question {seq}?",
                                           chatbot=snapshot)
            out += [req, ev.AiReplyCompletedEvent(
                **ids, visitor_message_id=req.visitor_message_id, text="an answer " * 20, provider="openai",
                model="gpt-4o-mini", usage=ev.Usage(prompt_tokens=500, completion_tokens=90, cost_usd=0.0003),
                timings=ev.Timings(ttft_ms=300, total_ms=1500), answered_from_knowledge=seq != 2)]
        out.append(ev.FeedbackGivenEvent(tenant_id=tenant, chatbot_id=bot, conversation_id=conv,
                                         reply_id=reply, rating="up"))
    return out[:n]


async def _ingest(url: str, count: int) -> dict:
    vhost, amqp = _vhost()
    publisher = Bus(amqp, "conversation")
    consumer = Bus(amqp, "analytics", prefetch=64)
    pool = await create_pool(url, migrations=MIGRATIONS, max_size=10)
    try:
        await publisher.connect()
        events = _turn_events(count)
        started = time.perf_counter()
        for i in range(0, len(events), 200):
            await asyncio.gather(*(publisher.publish(e) for e in events[i:i + 200]))
        publish_s = time.perf_counter() - started
        deps = handlers.bootstrap(Settings(), pool)
        await maintenance.ensure_partitions(pool, deps.partitions, ahead=1)
        await consumer.connect()
        subscribe_all(consumer, handlers.REGISTRY, deps)
        started = time.perf_counter()
        await consumer.start_consuming()
        deadline = started + 600
        while (stored := await pool.fetchval("SELECT count(*) FROM events")) < count:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {stored} of {count} events consumed")
            await asyncio.sleep(0.1)
        consume_s = time.perf_counter() - started
        replies = await pool.fetchval("SELECT sum(replies) FROM rollups WHERE grain = 'd'")
        expected = sum(isinstance(e, ev.AiReplyCompletedEvent) for e in events)
        assert replies == expected, (replies, expected)
        return {"ingested": count, "publish_s": publish_s, "consume_s": consume_s}
    finally:
        await consumer.close()
        await publisher.close()
        await pool.close()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


# --- report ----------------------------------------------------------------------------------

async def _run(events: int, ingest_count: int) -> str:
    _env()
    async with Scratch() as url:
        load = await _load(url, events)
    async with Scratch() as url:
        consumed = await _ingest(url, ingest_count)
    per_million = load["bytes"] / load["events"] * 1_000_000
    lines = [
        "## Analytics",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs; Postgres from POSTGRES_URL; throwaway database and vhost.",
        "",
        f"**Load:** {load['events']:,} synthetic events ({TENANTS} tenants × {BOTS_PER_TENANT} chatbots, "
        f"{DAYS} days) generated server-side into the partitioned `events` table in {load['load_s']:.0f} s "
        f"({load['events'] / load['load_s']:,.0f} events/s); rollups built from them in {load['rollup_s']:.0f} s "
        f"({load['rollup_rows']:,} hourly and daily rollup rows, {load['rollup_bytes'] / 2**20:.0f} MiB).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| summary (30 days + previous period + series) p50 / p95 | {load['summary_p50_ms']:.1f} / "
        f"{load['summary_p95_ms']:.1f} ms | p95 ≤ 200 ms |",
        f"| per-chatbot performance p50 / p95 | {load['chatbots_p50_ms']:.1f} / {load['chatbots_p95_ms']:.1f} ms "
        f"| p95 ≤ 200 ms |",
        f"| consumer ingestion (rollups included, acked after commit) | "
        f"{consumed['ingested'] / consumed['consume_s']:,.0f} events/s ({consumed['ingested']:,} events in "
        f"{consumed['consume_s']:.1f} s) | |",
        f"| publishing those events (confirms) | {consumed['ingested'] / consumed['publish_s']:,.0f} events/s | |",
        f"| disk per million raw events (heap + TOAST + indexes) | {per_million / 2**20:.0f} MiB | |",
        "",
    ]
    return "\n".join(lines)


def run(events: int | None = None, ingest_count: int | None = None) -> str:
    """The markdown section for docs/benchmarks.md."""
    return asyncio.run(_run(events or DEFAULT_EVENTS, ingest_count or DEFAULT_INGEST))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--ingest", type=int, default=DEFAULT_INGEST)
    args = parser.parse_args()
    print(run(args.events, args.ingest))


if __name__ == "__main__":
    main()
