"""All SQL of the analytics service.

Writes: raw events (partitioned by month, deduplicated on (event_id, occurred_at)), per-reply and
per-conversation facts, and rollup upserts, all inside the caller's transaction.
Reads: rollups and facts only; dashboards never scan raw events.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import asyncpg

from common.events import Event

ROLLUP_COLUMNS = (
    "conversations", "new_visitors", "returning_conversations", "engaged_conversations", "messages", "replies",
    "failed_replies", "cancelled_replies", "handoff_requests", "handoff_conversations", "cache_hits",
    "answered_from_knowledge", "unanswered", "feedback_up", "feedback_down", "prompt_tokens",
    "completion_tokens", "cost_usd", "sentiment_positive", "sentiment_neutral", "sentiment_negative",
)
MODEL_COLUMNS = ("replies", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")


def hour_of(at: datetime) -> datetime:
    at = at.astimezone(timezone.utc)
    return at.replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    return hour_of(at).replace(hour=0)


def month_of(at: datetime) -> date:
    at = at.astimezone(timezone.utc)
    return date(at.year, at.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"events_{month.year:04d}_{month.month:02d}"


# --- partitions ------------------------------------------------------------------------------

async def ensure_partition(conn: asyncpg.Connection, month: date) -> bool:
    """Create the month's partition if it is missing; True if it was created."""
    name = partition_name(month)
    start = datetime(month.year, month.month, 1, tzinfo=timezone.utc)
    end_month = next_month(month)
    end = datetime(end_month.year, end_month.month, 1, tzinfo=timezone.utc)
    async with conn.transaction():
        # two consumers creating the same month at once would race on the catalog
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('analytics_partitions'))")
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return False
        await conn.execute(
            f"CREATE TABLE {name} PARTITION OF events FOR VALUES FROM ('{start.isoformat()}') "
            f"TO ('{end.isoformat()}')")
    return True


async def partitions(conn: asyncpg.Connection) -> list[tuple[str, date]]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY c.relname")
    out = []
    for row in rows:
        _, year, month = row["relname"].split("_")
        out.append((row["relname"], date(int(year), int(month), 1)))
    return out


async def drop_partition(conn: asyncpg.Connection, name: str) -> None:
    assert name.startswith("events_") and name.replace("_", "").isalnum()
    await conn.execute(f"DROP TABLE IF EXISTS {name}")


# --- writes ----------------------------------------------------------------------------------

def chatbot_of(event: Event) -> uuid.UUID | None:
    """The chatbot an event is about: its ``chatbot_id``, or its snapshot's (ChatbotCreatedEvent),
    so deleting the chatbot finds every event that names it."""
    chatbot = getattr(event, "chatbot", None)
    return getattr(event, "chatbot_id", None) or getattr(chatbot, "chatbot_id", None)


async def insert_event(conn: asyncpg.Connection, event: Event, payload: dict) -> bool:
    """Store the raw event; False if it was stored before (a redelivery)."""
    row = await conn.fetchval(
        "INSERT INTO events (event_id, occurred_at, event_type, tenant_id, chatbot_id, conversation_id, "
        "correlation_id, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (event_id, occurred_at) DO NOTHING RETURNING 1",
        event.event_id, event.occurred_at, event.name(), event.tenant_id, chatbot_of(event),
        getattr(event, "conversation_id", None), event.correlation_id, payload)
    return row is not None


def _upsert_sql(table: str, keys: tuple[str, ...], columns: list[str], rows: int) -> str:
    all_cols = list(keys) + columns
    width = len(all_cols)
    values = ", ".join("(" + ", ".join(f"${r * width + i + 1}" for i in range(width)) + ")" for r in range(rows))
    updates = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in columns)
    return (f"INSERT INTO {table} ({', '.join(all_cols)}) VALUES {values} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}")


class RollupDeltas:
    """Rollup changes summed in memory over a batch of events, then written with one upsert
    per row, in key order (so two writers never lock the same rows in opposite orders)."""

    def __init__(self) -> None:
        self.rows: dict[tuple, dict[str, float]] = {}

    def _add(self, table: str, key: tuple, deltas: dict) -> None:
        row = self.rows.setdefault((table, *key), {})
        for column, value in deltas.items():
            if value:
                row[column] = row.get(column, 0) + value

    def bump(self, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, at: datetime, **deltas) -> None:
        """Add ``deltas`` to the hourly and daily rollup rows of ``at``."""
        unknown = set(deltas) - set(ROLLUP_COLUMNS)
        assert not unknown, unknown
        for grain, bucket in (("h", hour_of(at)), ("d", day_of(at))):
            self._add("rollups", (tenant_id, grain, bucket, chatbot_id), deltas)

    def bump_model(self, tenant_id, chatbot_id, at: datetime, provider: str, model: str, **deltas) -> None:
        for grain, bucket in (("h", hour_of(at)), ("d", day_of(at))):
            self._add("rollup_models", (tenant_id, grain, bucket, chatbot_id, provider, model), deltas)

    def bump_latency(self, tenant_id, chatbot_id, at: datetime, metric: str, idx: int) -> None:
        for grain, bucket in (("h", hour_of(at)), ("d", day_of(at))):
            self._add("rollup_latency", (tenant_id, grain, bucket, chatbot_id, metric, idx), {"n": 1})

    def bump_intent(self, tenant_id, chatbot_id, at: datetime, intent: str) -> None:
        self._add("rollup_intents", (tenant_id, day_of(at), chatbot_id, intent), {"n": 1})

    _TABLES = {
        "rollups": (("tenant_id", "grain", "bucket", "chatbot_id"), ROLLUP_COLUMNS),
        "rollup_models": (("tenant_id", "grain", "bucket", "chatbot_id", "provider", "model"), MODEL_COLUMNS),
        "rollup_latency": (("tenant_id", "grain", "bucket", "chatbot_id", "metric", "idx"), ("n",)),
        "rollup_intents": (("tenant_id", "bucket", "chatbot_id", "intent"), ("n",)),
    }

    async def flush(self, conn: asyncpg.Connection) -> None:
        by_table: dict[str, list] = {}
        for key in sorted(self.rows, key=lambda k: tuple(str(part) for part in k)):
            deltas = self.rows[key]
            if not any(deltas.values()):
                continue
            table, *values = key
            columns = self._TABLES[table][1]
            by_table.setdefault(table, []).append((*values, *(deltas.get(c, 0) for c in columns)))
        for table in self._TABLES:  # always the same table order
            if table in by_table:
                keys, columns = self._TABLES[table]
                await conn.executemany(_upsert_sql(table, keys, list(columns), 1), by_table[table])
        self.rows.clear()


async def add_visitor_day(conn, tenant_id, chatbot_id, at: datetime, visitor_id) -> None:
    await conn.execute(
        "INSERT INTO visitor_days (tenant_id, day, chatbot_id, visitor_id) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT DO NOTHING", tenant_id, day_of(at).date(), chatbot_id, visitor_id)


async def touch_conversation(conn, event, at: datetime):
    """Make sure the conversation's facts row exists, lock it and return it (one round trip)."""
    return await conn.fetchrow(
        "INSERT INTO conversation_facts (conversation_id, tenant_id, chatbot_id, first_seen_at, last_activity_at) "
        "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (conversation_id) DO UPDATE "
        "SET last_activity_at = greatest(conversation_facts.last_activity_at, EXCLUDED.last_activity_at) "
        "RETURNING *", event.conversation_id, event.tenant_id, event.chatbot_id, at)


async def update_conversation(conn, conversation_id, at: datetime, *, sets: dict | None = None,
                              adds: dict | None = None) -> None:
    sets, adds = sets or {}, adds or {}
    parts, args = [], [conversation_id, at]
    for column, value in sets.items():
        args.append(value)
        parts.append(f"{column} = ${len(args)}")
    for column, value in adds.items():
        args.append(value)
        parts.append(f"{column} = {column} + ${len(args)}")
    parts.append("last_activity_at = greatest(last_activity_at, $2)")
    await conn.execute(f"UPDATE conversation_facts SET {', '.join(parts)} WHERE conversation_id = $1", *args)


async def touch_reply(conn, event, at: datetime):
    """Make sure the reply's facts row exists, lock it and return it (one round trip)."""
    return await conn.fetchrow(
        "INSERT INTO reply_facts (reply_id, tenant_id, chatbot_id, conversation_id, first_seen_at) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reply_id) DO UPDATE SET first_seen_at = "
        "least(reply_facts.first_seen_at, EXCLUDED.first_seen_at) RETURNING *",
        event.reply_id, event.tenant_id, event.chatbot_id, event.conversation_id, at)


async def update_reply(conn, reply_id, **sets) -> None:
    parts, args = [], [reply_id]
    for column, value in sets.items():
        args.append(value)
        parts.append(f"{column} = ${len(args)}")
    await conn.execute(f"UPDATE reply_facts SET {', '.join(parts)} WHERE reply_id = $1", *args)


# --- retention -------------------------------------------------------------------------------

async def retention_days(conn, tenant_id) -> int | None:
    return await conn.fetchval("SELECT retention_days FROM tenant_settings WHERE tenant_id = $1", tenant_id)


async def set_retention_days(conn, tenant_id, days: int) -> None:
    await conn.execute(
        "INSERT INTO tenant_settings (tenant_id, retention_days) VALUES ($1, $2) ON CONFLICT (tenant_id) "
        "DO UPDATE SET retention_days = EXCLUDED.retention_days, updated_at = now()", tenant_id, days)


async def tenant_retentions(conn) -> list:
    return await conn.fetch("SELECT tenant_id, retention_days FROM tenant_settings")


async def purge_tenant(conn, tenant_id, before: datetime, batch: int = 5000) -> int:
    """Delete a tenant's raw events and facts older than ``before`` (rollups stay)."""
    total = 0
    for sql in (
        "DELETE FROM events WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE tenant_id = $1 "
        "AND occurred_at < $2 LIMIT $3))",
        "DELETE FROM reply_facts WHERE reply_id = ANY(ARRAY(SELECT reply_id FROM reply_facts "
        "WHERE tenant_id = $1 AND first_seen_at < $2 LIMIT $3))",
        "DELETE FROM conversation_facts WHERE conversation_id = ANY(ARRAY(SELECT conversation_id "
        "FROM conversation_facts WHERE tenant_id = $1 AND last_activity_at < $2 LIMIT $3))",
        "DELETE FROM visitor_days WHERE (tenant_id, day, chatbot_id, visitor_id) IN (SELECT tenant_id, day, "
        "chatbot_id, visitor_id FROM visitor_days WHERE tenant_id = $1 AND day < $2::timestamptz::date LIMIT $3)",
    ):
        while True:
            status = await conn.execute(sql, tenant_id, before, batch)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < batch:
                break
    return total


# --- reads -----------------------------------------------------------------------------------

def _scope(chatbot_ids: list[uuid.UUID] | None, first_arg: int) -> str:
    return "" if chatbot_ids is None else f" AND chatbot_id = ANY(${first_arg}::uuid[])"


def _range_args(tenant_id, since, until, chatbot_ids) -> list:
    """$1..$3 (tenant, range), and $4 when ``_scope(chatbot_ids, 4)`` added it."""
    return [tenant_id, since, until] + ([chatbot_ids] if chatbot_ids is not None else [])


async def rollup_totals(conn, tenant_id, since: datetime, until: datetime, chatbot_ids=None, grain: str = "d",
                        group_by: str | None = None) -> list:
    """Sums of every rollup column over [since, until), optionally grouped ('chatbot_id' or 'bucket')."""
    sums = ", ".join(f"coalesce(sum({c}), 0)::{'float8' if c == 'cost_usd' else 'bigint'} AS {c}"
                     for c in ROLLUP_COLUMNS)
    group = f"{group_by}, " if group_by else ""
    sql = (f"SELECT {group}{sums} FROM rollups WHERE tenant_id = $1 AND grain = $2 AND bucket >= $3 "
           f"AND bucket < $4{_scope(chatbot_ids, 5)}")
    if group_by:
        sql += f" GROUP BY {group_by} ORDER BY {group_by}"
    args = [tenant_id, grain, since, until] + ([chatbot_ids] if chatbot_ids is not None else [])
    return await conn.fetch(sql, *args)


async def unique_visitors(conn, tenant_id, since: datetime, until: datetime, chatbot_ids=None,
                          by_chatbot: bool = False) -> list:
    group = "chatbot_id, " if by_chatbot else ""
    sql = (f"SELECT {group}count(DISTINCT visitor_id) AS visitors FROM visitor_days WHERE tenant_id = $1 "
           f"AND day >= $2 AND day < $3{_scope(chatbot_ids, 4)}")
    if by_chatbot:
        sql += " GROUP BY chatbot_id"
    args = _range_args(tenant_id, since.date(), until.date(), chatbot_ids)
    return await conn.fetch(sql, *args)


async def latency_histogram(conn, tenant_id, since, until, chatbot_ids=None, by_chatbot: bool = False) -> list:
    group = "chatbot_id, " if by_chatbot else ""
    sql = (f"SELECT {group}metric, idx, sum(n)::bigint AS n FROM rollup_latency WHERE tenant_id = $1 AND grain = 'd' "
           f"AND bucket >= $2 AND bucket < $3{_scope(chatbot_ids, 4)} GROUP BY {group}metric, idx")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def latency_by_bucket(conn, tenant_id, since, until, chatbot_ids=None, grain: str = "d") -> list:
    """The latency histograms per hour or day bucket (for the series' response times)."""
    sql = (f"SELECT bucket, metric, idx, sum(n)::bigint AS n FROM rollup_latency WHERE tenant_id = $1 "
           f"AND grain = '{'h' if grain == 'h' else 'd'}' AND bucket >= $2 AND bucket < $3{_scope(chatbot_ids, 4)} "
           f"GROUP BY bucket, metric, idx")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def model_totals(conn, tenant_id, since, until, chatbot_ids=None) -> list:
    sums = ", ".join(f"sum({c})::{'float8' if c == 'cost_usd' else 'bigint'} AS {c}" for c in MODEL_COLUMNS)
    sql = (f"SELECT provider, model, {sums} FROM rollup_models WHERE tenant_id = $1 AND grain = 'd' "
           f"AND bucket >= $2 AND bucket < $3{_scope(chatbot_ids, 4)} GROUP BY provider, model "
           f"ORDER BY sum(cost_usd) DESC, provider, model")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def top_intents(conn, tenant_id, since, until, chatbot_ids=None, limit: int = 10) -> list:
    sql = (f"SELECT intent, sum(n)::bigint AS n FROM rollup_intents WHERE tenant_id = $1 AND bucket >= $2 "
           f"AND bucket < $3{_scope(chatbot_ids, 4)} GROUP BY intent ORDER BY sum(n) DESC, intent LIMIT {int(limit)}")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def conversations_by_hour_of_day(conn, tenant_id, since, until, chatbot_ids=None) -> list:
    sql = (f"SELECT extract(hour FROM bucket AT TIME ZONE 'UTC')::int AS hour, sum(conversations)::bigint AS n "
           f"FROM rollups WHERE tenant_id = $1 AND grain = 'h' AND bucket >= $2 AND bucket < $3"
           f"{_scope(chatbot_ids, 4)} GROUP BY 1 ORDER BY 1")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def unanswered_questions(conn, tenant_id, since, until, chatbot_ids=None, limit: int = 5000) -> list:
    sql = (f"SELECT reply_id, chatbot_id, conversation_id, question, answer, completed_at FROM reply_facts "
           f"WHERE tenant_id = $1 AND unanswered AND completed_at >= $2 AND completed_at < $3"
           f"{_scope(chatbot_ids, 4)} AND question IS NOT NULL ORDER BY completed_at DESC LIMIT {int(limit)}")
    return await conn.fetch(sql, *_range_args(tenant_id, since, until, chatbot_ids))


async def rated_replies(conn, tenant_id, since, until, rating: str, chatbot_ids=None, limit: int = 100) -> list:
    sql = (f"SELECT reply_id, chatbot_id, conversation_id, question, answer, citations, rating, rating_comment, "
           f"rated_at FROM reply_facts WHERE tenant_id = $1 AND rating = $4 AND rated_at >= $2 AND rated_at < $3"
           f"{_scope(chatbot_ids, 5)} ORDER BY rated_at DESC LIMIT {int(limit)}")
    args = [tenant_id, since, until, rating] + ([chatbot_ids] if chatbot_ids is not None else [])
    return await conn.fetch(sql, *args)


def conversations_export_sql(chatbot_ids) -> str:
    return ("SELECT conversation_id, chatbot_id, visitor_id, coalesce(started_at, first_seen_at) AS started_at, "
            "last_activity_at, returning_visitor, messages, replies, failed_replies, handoff, feedback_up, "
            "feedback_down, prompt_tokens, completion_tokens, cost_usd FROM conversation_facts "
            "WHERE tenant_id = $1 AND coalesce(started_at, first_seen_at) >= $2 "
            f"AND coalesce(started_at, first_seen_at) < $3{_scope(chatbot_ids, 4)} "
            "ORDER BY coalesce(started_at, first_seen_at), conversation_id")


def metrics_export_sql(chatbot_ids, grain: str) -> str:
    assert grain in ("h", "d")
    return (f"SELECT bucket, chatbot_id, {', '.join(ROLLUP_COLUMNS)} FROM rollups WHERE tenant_id = $1 "
            f"AND grain = '{grain}' AND bucket >= $2 AND bucket < $3{_scope(chatbot_ids, 4)} "
            "ORDER BY bucket, chatbot_id")


def day_range(since: date, until_inclusive: date) -> tuple[datetime, datetime]:
    start = datetime(since.year, since.month, since.day, tzinfo=timezone.utc)
    end = datetime(until_inclusive.year, until_inclusive.month, until_inclusive.day, tzinfo=timezone.utc)
    return start, end + timedelta(days=1)


# --- erasure (chatbot or tenant deleted, a visitor's data erased) ------------------------------

TENANT_TABLES = ("events", "rollups", "rollup_models", "rollup_latency", "rollup_intents", "visitor_days",
                 "conversation_facts", "reply_facts")
# what names a visitor; the rollups count everyone and name nobody
VISITOR_TABLES = ("events", "reply_facts", "conversation_facts", "visitor_days")


async def delete_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    """Everything recorded of a deleted chatbot, its rollups included: its history leaves the
    tenant's reports with it."""
    for table in TENANT_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)


async def delete_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    for table in (*TENANT_TABLES, "tenant_settings"):
        await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1", tenant_id)


async def visitor_conversations(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                                visitor_id: uuid.UUID, also: list[uuid.UUID]) -> list[uuid.UUID]:
    """The visitor's conversations as analytics knows them, and ``also`` (those the conversation
    service named)."""
    rows = await conn.fetch(
        "SELECT conversation_id FROM conversation_facts WHERE tenant_id = $1 AND chatbot_id = $2 AND visitor_id = $3",
        tenant_id, chatbot_id, visitor_id)
    return sorted({r["conversation_id"] for r in rows} | set(also))


async def visitor_events(conn: asyncpg.Connection, tenant_id: uuid.UUID, conversation_ids: list[uuid.UUID]):
    return await conn.fetch(
        "SELECT event_id, event_type, occurred_at, payload FROM events WHERE tenant_id = $1 "
        "AND conversation_id = ANY($2::uuid[]) ORDER BY occurred_at, event_id", tenant_id, conversation_ids)


async def delete_visitor(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                         visitor_id: uuid.UUID, conversation_ids: list[uuid.UUID]) -> None:
    """The visitor's raw events, facts and daily presence. Rollups are counts of everyone and
    name no visitor: they stay."""
    await conn.execute("DELETE FROM events WHERE tenant_id = $1 AND conversation_id = ANY($2::uuid[])",
                       tenant_id, conversation_ids)
    await conn.execute("DELETE FROM reply_facts WHERE tenant_id = $1 AND conversation_id = ANY($2::uuid[])",
                       tenant_id, conversation_ids)
    await conn.execute("DELETE FROM conversation_facts WHERE tenant_id = $1 AND conversation_id = ANY($2::uuid[])",
                       tenant_id, conversation_ids)
    await conn.execute("DELETE FROM visitor_days WHERE tenant_id = $1 AND chatbot_id = $2 AND visitor_id = $3",
                       tenant_id, chatbot_id, visitor_id)


async def tenants_with_facts_before(conn: asyncpg.Connection, before: datetime) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT DISTINCT tenant_id FROM conversation_facts WHERE first_seen_at < $1", before)
    return [r["tenant_id"] for r in rows]
