"""analytics service app factory."""
from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.logging import get_logger
from common.topology import SUBSCRIPTIONS
from common.web import POOL, make_app, service_context
from services.analytics import handlers, ingest, maintenance, views
from services.analytics.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
PARTITIONS = web.AppKey("partition_cache", ingest.PartitionCache)
log = get_logger(__name__)


def _subscribe(app: web.Application, bus: Bus) -> None:
    # every durable event class, each on its own queue (<EventClass>.analytics)
    recorder = handlers.Recorder(app[POOL], app[PARTITIONS])
    for event_cls in SUBSCRIPTIONS["analytics"]:
        bus.subscribe(event_cls, partial(handlers.on_event, recorder=recorder))


def _maintenance(settings: Settings):
    """Partitions ahead of time, then retention, at start-up and every interval."""
    async def ctx(app: web.Application):
        async def loop():
            while True:
                try:
                    await maintenance.run(app[POOL], app[PARTITIONS], ahead=settings.partitions_ahead,
                                          default_days=settings.retention_days,
                                          max_days=settings.max_retention_days)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - next round
                    log.warning("analytics_maintenance_failed", exc_info=True)
                await asyncio.sleep(settings.maintenance_interval_s)
        task = asyncio.create_task(loop(), name="analytics-maintenance")
        yield
        task.cancel()
    return ctx


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app[PARTITIONS] = ingest.PartitionCache()
    app[views.RETENTION_DEFAULT] = settings.retention_days
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe, outbox=False))
    app.cleanup_ctx.append(_maintenance(settings))
    app.router.add_routes(views.routes)
    return app
