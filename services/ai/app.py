"""ai service app factory."""
from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.handlers import periodic
from common.logging import get_logger
from common.web import POOL, make_app, service_context
from services.ai import handlers, repository, speech
from services.ai.keyvault import KeyVault
from services.ai.settings import Settings
from services.ai.views import VAULT, add_routes

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


async def _purge_cache(app: web.Application) -> None:
    """Expired cache rows are never served (the lookup checks expires_at); this only keeps the
    table small."""
    async with app[POOL].acquire() as conn:
        purged = await repository.purge_expired_cache(conn)
    if purged:
        log.info("reply_cache_purged", rows=purged)


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app[VAULT] = KeyVault(settings.secret_key)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, registry=handlers.REGISTRY,
                                           bootstrap=handlers.bootstrap))
    app.cleanup_ctx.append(periodic("ai-cache-purge", _purge_cache, 600.0))
    add_routes(app)
    speech.add_routes(app)
    return app

