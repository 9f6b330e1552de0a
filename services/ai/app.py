"""ai service app factory."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common import events as ev
from common.bus import Bus
from common.web import POOL, make_app, service_context
from services.ai.providers import LocalProvider
from services.ai.service import ReplyDeps, generate_reply
from services.ai.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _subscribe(settings: Settings):
    def subscribe(app: web.Application, bus: Bus) -> None:
        deps = ReplyDeps(pool=app[POOL], bus=bus, providers={"local": LocalProvider()},
                         chunk_interval_s=settings.chunk_interval_ms / 1000, deadline_s=settings.reply_deadline_s)

        async def on_ai_reply_requested(event: ev.AiReplyRequestedEvent) -> None:
            await generate_reply(event, deps)

        bus.subscribe(ev.AiReplyRequestedEvent, on_ai_reply_requested)
    return subscribe


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe(settings)))
    return app
