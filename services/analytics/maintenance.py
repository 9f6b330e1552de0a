"""Partitions created ahead of time, and retention.

Retention has two levels. Whole monthly partitions older than the longest allowed retention
are dropped: a catalog operation, no row is scanned. Inside the kept months, a tenant whose
retention is shorter has its raw events and facts deleted in small batches. Rollups (counts,
no visitor text) are kept.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg

from common.logging import get_logger
from services.analytics import repository as repo
from services.analytics.ingest import PartitionCache

log = get_logger(__name__)


async def ensure_partitions(pool: asyncpg.Pool, cache: PartitionCache, ahead: int,
                            now: datetime | None = None) -> list[str]:
    now = now or datetime.now(timezone.utc)
    month = repo.month_of(now)
    created = []
    async with pool.acquire() as conn:
        for _ in range(ahead + 1):
            if await repo.ensure_partition(conn, month):
                created.append(repo.partition_name(month))
            cache.months.add(month)
            month = repo.next_month(month)
    if created:
        log.info("partitions_created", partitions=created)
    return created


async def drop_expired_partitions(pool: asyncpg.Pool, cache: PartitionCache, max_days: int,
                                  now: datetime | None = None) -> list[str]:
    """Drop every partition whose whole month ended more than ``max_days`` ago."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=max_days)
    dropped = []
    async with pool.acquire() as conn:
        for name, month in await repo.partitions(conn):
            end = repo.next_month(month)
            if datetime(end.year, end.month, 1, tzinfo=timezone.utc) <= cutoff:
                await repo.drop_partition(conn, name)
                cache.months.discard(month)
                dropped.append(name)
    if dropped:
        log.info("partitions_dropped", partitions=dropped)
    return dropped


async def purge_tenants(pool: asyncpg.Pool, default_days: int, now: datetime | None = None) -> int:
    """Apply each tenant's retention (or the default) to raw events and facts."""
    now = now or datetime.now(timezone.utc)
    total = 0
    async with pool.acquire() as conn:
        chosen = {r["tenant_id"]: r["retention_days"] for r in await repo.tenant_retentions(conn)}
        tenants = set(chosen) | set(await repo.tenants_with_facts_before(conn, now - timedelta(days=default_days)))
        for tenant_id in tenants:
            days = chosen.get(tenant_id, default_days)
            total += await repo.purge_tenant(conn, tenant_id, now - timedelta(days=days))
    if total:
        log.info("retention_purged", rows=total)
    return total


async def run(pool: asyncpg.Pool, cache: PartitionCache, *, ahead: int, default_days: int, max_days: int) -> None:
    await ensure_partitions(pool, cache, ahead)
    await drop_expired_partitions(pool, cache, max_days)
    await purge_tenants(pool, default_days)
