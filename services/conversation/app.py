"""Conversation service app factory."""
from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common import events as ev
from common.bus import Bus
from common.logging import get_logger
from common.web import POOL, make_app, service_context
from services.conversation import handlers, views
from services.conversation.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def _subscribe(settings: Settings):
    def subscribe(app: web.Application, bus: Bus) -> None:
        pool = app[POOL]
        # one conversation's messages one at a time, in the order the queue delivers them
        bus.subscribe(ev.VisitorMessageReceivedEvent, partial(
            handlers.on_visitor_message_received, pool=pool, history_messages=settings.history_messages,
            order_hold_s=settings.order_hold_s, reply_deadline_s=settings.reply_deadline_s),
            ordered_by=lambda event: event.conversation_id)
        bus.subscribe(ev.AiReplyCompletedEvent, partial(handlers.on_ai_reply_completed, pool=pool))
        bus.subscribe(ev.AiReplyFailedEvent, partial(handlers.on_ai_reply_failed, pool=pool))
        bus.subscribe(ev.AvatarAnimationSelectedEvent, partial(handlers.on_avatar_animation_selected, pool=pool))
        bus.subscribe(ev.FeedbackGivenEvent, partial(handlers.on_feedback_given, pool=pool))
    return subscribe


def _watchdog(settings: Settings):
    async def ctx(app: web.Application):
        async def loop():
            while True:
                await asyncio.sleep(min(10.0, settings.reply_deadline_s / 3))
                try:
                    failed = await handlers.fail_overdue_replies(app[POOL], settings.reply_deadline_s)
                    if failed:
                        log.warning("overdue_replies_failed", count=failed)
                except Exception:  # noqa: BLE001 - try again next round
                    log.warning("watchdog_failed", exc_info=True)
        task = asyncio.create_task(loop())
        yield
        task.cancel()
    return ctx


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe(settings)))
    app.cleanup_ctx.append(_watchdog(settings))
    app.router.add_routes(views.routes)
    return app
