"""avatar service app factory."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common import events as ev
from common.bus import Bus
from common.web import POOL, make_app, service_context
from services.avatar import handlers
from services.avatar.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _subscribe(app: web.Application, bus: Bus) -> None:
    bus.subscribe(ev.AiReplyCompletedEvent, partial(handlers.on_ai_reply_completed, pool=app[POOL]))


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe))
    return app
