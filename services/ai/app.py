"""ai service app factory."""
from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from common import events as ev
from common.bus import Bus
from common.logging import get_logger
from common.settings import service_url
from common.http import internal_session
from common.web import POOL, SETTINGS, make_app, service_context
from services.ai import repository, speech
from services.ai.keyvault import KeyVault
from services.ai.knowledge import KnowledgeClient
from services.ai.pricing import PriceTable
from services.ai.providers.registry import ProviderRegistry
from services.ai.service import CancelBoard, ReplyDeps, ReplyPolicy, generate_reply
from services.ai.settings import Settings
from services.ai.views import CANCELS, VAULT, add_routes

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
HTTP = web.AppKey("http", aiohttp.ClientSession)
REGISTRY = web.AppKey("registry", ProviderRegistry)
DEPS = web.AppKey("deps", ReplyDeps)


async def _http_session(app: web.Application):
    """One client session for internal HTTP (knowledge search), closed on shutdown."""
    app[HTTP] = internal_session(app[SETTINGS].internal_api_key)
    yield
    await app[HTTP].close()


def _subscribe(settings: Settings):
    def subscribe(app: web.Application, bus: Bus) -> None:
        registry = ProviderRegistry(settings, app[POOL], app[VAULT])
        app[REGISTRY] = registry
        policy = ReplyPolicy(deadline_s=settings.ai_deadline_s,
                             first_token_timeout_s=settings.first_token_timeout_s,
                             retries=settings.provider_retries, backoff_s=settings.retry_backoff_s,
                             chunk_interval_s=settings.chunk_interval_ms / 1000)
        knowledge = KnowledgeClient(app[HTTP], settings.knowledge_url or service_url("knowledge"),
                                    timeout_s=settings.knowledge_timeout_s)
        deps = ReplyDeps(pool=app[POOL], bus=bus, providers=registry, policy=policy, knowledge=knowledge,
                         prices=PriceTable.load(settings.prices_file), cache_ttl_s=settings.cache_ttl_s,
                         history_tokens=settings.history_token_budget,
                         knowledge_tokens=settings.knowledge_token_budget, cancels=app[CANCELS])
        app[DEPS] = deps

        async def on_ai_reply_requested(event: ev.AiReplyRequestedEvent) -> None:
            await generate_reply(event, deps)

        # a conversation's replies stream one after the other, in the order they were asked
        bus.subscribe(ev.AiReplyRequestedEvent, on_ai_reply_requested,
                      ordered_by=lambda event: event.conversation_id)
    return subscribe


async def _close_providers(app: web.Application):
    yield
    if REGISTRY in app:
        await app[REGISTRY].close()


def _purge_cache_every(interval_s: float):
    """Expired cache rows are never served (the lookup checks expires_at); this only keeps the
    table small."""
    async def ctx(app: web.Application):
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    async with app[POOL].acquire() as conn:
                        purged = await repository.purge_expired_cache(conn)
                    if purged:
                        log.info("reply_cache_purged", rows=purged)
                except Exception:  # noqa: BLE001 - try again next round
                    log.warning("reply_cache_purge_failed", exc_info=True)

        task = asyncio.create_task(loop(), name="ai-cache-purge")
        yield
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return ctx


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app[VAULT] = KeyVault(settings.secret_key)
    app[CANCELS] = CancelBoard()
    app.cleanup_ctx.append(_http_session)
    app.cleanup_ctx.append(_close_providers)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, subscribe=_subscribe(settings)))
    app.cleanup_ctx.append(_purge_cache_every(600.0))
    add_routes(app)
    speech.add_routes(app, REGISTRY)
    return app
