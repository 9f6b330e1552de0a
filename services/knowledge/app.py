"""knowledge service app factory."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.web import HEALTH_CHECKS, POOL, make_app, service_context
from services.knowledge import handlers, repository, views
from services.knowledge.embeddings import Embedder
from services.knowledge.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _check_pgvector(app: web.Application) -> dict:
    version = await repository.pgvector_version(app[POOL])
    if version is None:
        raise RuntimeError("the vector extension is missing")
    return {"pgvector": version}


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None, local_embedder: Embedder | None = None) -> web.Application:
    """``local_embedder`` lets tests share one loaded local model between apps (not closed here)."""
    settings = settings or Settings()
    app = make_app(settings, client_max_size=settings.max_upload_bytes + 1024 ** 2)
    # the deps close (crawls cancelled and recorded) before the pool does
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, vector=True, registry=handlers.REGISTRY,
                                           bootstrap=partial(handlers.bootstrap, local_embedder=local_embedder)))
    app[HEALTH_CHECKS]["pgvector"] = _check_pgvector
    app.router.add_routes(views.routes)
    return app
