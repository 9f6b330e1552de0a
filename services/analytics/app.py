"""analytics service app factory."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.topology import SUBSCRIPTIONS
from common.web import POOL, make_app, service_context
from services.analytics import handlers
from services.analytics.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _subscribe(app: web.Application, bus: Bus) -> None:
    for event_cls in SUBSCRIPTIONS["analytics"]:
        bus.subscribe(event_cls, partial(handlers.record_event, pool=app[POOL]))


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe, outbox=False))
    return app
