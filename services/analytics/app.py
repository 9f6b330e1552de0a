"""analytics service app factory."""
from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.handlers import periodic
from common.web import DEPS, make_app, service_context
from services.analytics import handlers, maintenance, views
from services.analytics.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _maintain(app: web.Application) -> None:
    """Partitions ahead of time, then retention."""
    deps: handlers.Deps = app[DEPS]
    await maintenance.run(deps.pool, deps.partitions, ahead=deps.settings.partitions_ahead,
                          default_days=deps.settings.retention_days, max_days=deps.settings.max_retention_days)


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app[views.RETENTION_DEFAULT] = settings.retention_days
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, registry=handlers.REGISTRY,
                                           bootstrap=handlers.bootstrap, outbox=False))
    # at start-up, then every interval
    app.cleanup_ctx.append(periodic("analytics-maintenance", _maintain, settings.maintenance_interval_s,
                                    run_first=True))
    app.router.add_routes(views.routes)
    return app
