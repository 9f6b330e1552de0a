"""asyncpg pools, the migrations runner, the inbox (dedupe on event_id) and the outbox."""
from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import asyncpg
import numpy as np

from common.events import Event
from common.logging import get_logger

T = TypeVar("T")

log = get_logger(__name__)

COMMON_MIGRATIONS = Path(__file__).parent / "migrations"
OUTBOX_CHANNEL = "outbox"


class MigrationError(RuntimeError):
    pass


async def _init_connection(conn: asyncpg.Connection, vector: bool) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    if vector:
        from pgvector import Vector
        from pgvector.asyncpg import register_vector

        await register_vector(conn)
        # pgvector >= 0.4 decodes to its own Vector class; every caller here computes with
        # numpy, so a vector read from the database is always a float32 array.
        await conn.set_type_codec(
            "vector", encoder=lambda v: (v if isinstance(v, Vector) else Vector(v)).to_binary(),
            decoder=lambda data: Vector.from_binary(data).to_numpy().astype(np.float32, copy=False),
            format="binary")


async def create_pool(dsn: str, *, vector: bool = False, min_size: int = 1, max_size: int = 10,
                      migrations: Path | None = None) -> asyncpg.Pool:
    """A pool whose connections speak jsonb (and pgvector). Migrations run before the pool
    is built, because registering the vector type needs the extension to exist."""
    if migrations is not None:
        conn = await asyncpg.connect(dsn)
        try:
            await apply_migrations(conn, migrations)
        finally:
            await conn.close()
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size,
        init=lambda conn: _init_connection(conn, vector),
    )


def _migration_files(directory: Path, namespace: str) -> list[tuple[str, str, str]]:
    files = []
    for path in sorted(directory.glob("*.sql")):
        prefix = path.name.split("_", 1)[0]
        if not prefix.isdigit():
            raise MigrationError(f"migration {path} must start with a number")
        sql = path.read_text()
        files.append((f"{namespace}/{path.name}", sql, hashlib.sha256(sql.encode()).hexdigest()))
    return files


async def apply_migrations(conn: asyncpg.Connection, directory: Path) -> list[str]:
    """Apply the common migrations, then ``directory``'s numbered SQL files, each once, in order.

    An advisory lock serialises replicas starting together. A file whose checksum differs from
    the one recorded when it was applied stops the start-up: applied migrations are append-only.
    """
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock(4242)")
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"]: r["checksum"] for r in await conn.fetch("SELECT name, checksum FROM schema_migrations")}
        for name, sql, checksum in (_migration_files(COMMON_MIGRATIONS, "common")
                                    + _migration_files(directory, "service")):
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(f"applied migration {name} was edited; add a new file instead")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum)
            applied_now.append(name)
            log.info("migration_applied", migration=name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(4242)")
    return applied_now


async def claim(conn: asyncpg.Connection, event: Event) -> bool:
    """Record ``event`` as handled in the caller's transaction. False if it already was:
    the handler then does nothing, which makes redeliveries harmless."""
    row = await conn.fetchval(
        "INSERT INTO processed_events (event_id, event_type) VALUES ($1, $2) "
        "ON CONFLICT DO NOTHING RETURNING 1",
        event.event_id, event.name(),
    )
    return row is not None


async def handled(conn: asyncpg.Connection, event: Event) -> bool:
    """Whether ``event`` was handled already (a look before long work outside the transaction)."""
    return bool(await conn.fetchval("SELECT 1 FROM processed_events WHERE event_id = $1", event.event_id))


async def apply_once(pool: asyncpg.Pool, event: Event, change: Callable[..., Awaitable[T]], *args: Any) -> T | None:
    """``change(conn, *args)`` in one transaction with ``claim``: a redelivered event changes
    nothing and gives None."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return None
        return await change(conn, *args)


async def enqueue(conn: asyncpg.Connection, *events: Event) -> None:
    """Add events to the outbox in the caller's transaction. The NOTIFY is delivered on commit,
    waking the relay at once; nothing is published if the transaction rolls back."""
    await conn.executemany(
        "INSERT INTO outbox (event_id, event_type, routing_key, body) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (event_id) DO NOTHING",
        [(e.event_id, e.name(), e.routing_key(), e.model_dump(mode="json")) for e in events],
    )
    await conn.execute(f"NOTIFY {OUTBOX_CHANNEL}")


class OutboxRelay:
    """Publishes committed outbox rows, oldest first, deleting each once the broker confirmed it.

    Woken by NOTIFY on commit, and polls every ``interval`` seconds to recover rows left by a
    crash. Rows are locked with SKIP LOCKED, so replicas share the work.

    The LISTEN connection dies with the database (a restart, a failover); it is re-established
    as soon as the database answers again, so the fast path comes back by itself. Until then
    the relay polls, and ``listening`` is False (``/health`` reports it). Failures are logged
    when they start and when they end, not every round.
    """

    def __init__(self, pool: asyncpg.Pool, bus, *, interval: float = 1.0, batch: int = 100):
        self.pool = pool
        self.bus = bus
        self.interval = interval
        self.batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listen_conn: asyncpg.Connection | None = None
        self._failing_since: float | None = None

    @property
    def listening(self) -> bool:
        try:
            return self._listen_conn is not None and not self._listen_conn.is_closed()
        except asyncpg.InterfaceError:  # the pool took it back (closing)
            return False

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def _listen(self) -> bool:
        if self.listening:
            return True
        await self._unlisten()
        try:
            conn = await self.pool.acquire(timeout=5)
        except Exception:  # noqa: BLE001 - the database is away: poll until it is back
            return False
        try:
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_lost)
        except Exception:  # noqa: BLE001
            await self.pool.release(conn)
            return False
        self._listen_conn = conn
        self._wake.set()  # rows committed while we were not listening
        return True

    async def _unlisten(self) -> None:
        conn, self._listen_conn = self._listen_conn, None
        if conn is None:
            return
        try:
            conn.remove_termination_listener(self._on_lost)
            if not conn.is_closed():
                await conn.remove_listener(OUTBOX_CHANNEL, self._on_notify)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            await self.pool.release(conn)
        except Exception:  # noqa: BLE001
            pass

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._unlisten()
        try:
            await self.drain()
        except Exception as exc:  # noqa: BLE001 - the rows stay; the next start publishes them
            log.warning("outbox_not_drained_at_stop", error=repr(exc)[:200])

    def _on_notify(self, *_args) -> None:
        self._wake.set()

    def _on_lost(self, *_args) -> None:
        log.warning("outbox_listen_lost")
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                if not self.listening and await self._listen():
                    log.info("outbox_listening_again")
                while await self.drain() == self.batch:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: the rows stay, next round retries
                if self._failing_since is None:
                    self._failing_since = loop.time()
                    log.warning("outbox_relay_failing", error=repr(exc)[:300])
                await asyncio.sleep(self.interval)
                continue
            if self._failing_since is not None:
                log.info("outbox_relay_recovered", after_s=round(loop.time() - self._failing_since, 1))
                self._failing_since = None

    async def drain(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_type, routing_key, body FROM outbox ORDER BY id "
                "LIMIT $1 FOR UPDATE SKIP LOCKED", self.batch,
            )
            for row in rows:
                await self.bus.publish_raw(row["event_type"], row["routing_key"], row["body"])
            if rows:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        return len(rows)
