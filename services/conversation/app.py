"""Conversation service app factory."""
from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.handlers import periodic
from common.web import DEPS, make_app, service_context
from services.conversation import handlers, service, views
from services.conversation.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, registry=handlers.REGISTRY,
                                           bootstrap=handlers.bootstrap))
    # the reply deadline's watchdog
    app.cleanup_ctx.append(periodic("reply-watchdog", lambda app: service.fail_overdue_replies(app[DEPS]),
                                    min(10.0, settings.reply_deadline_s / 3)))
    app.router.add_routes(views.routes)
    return app
