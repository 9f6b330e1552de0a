"""knowledge service app factory."""
from __future__ import annotations

from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.web import HEALTH_CHECKS, POOL, make_app, service_context
from services.knowledge.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _check_pgvector(app: web.Application) -> dict:
    version = await app[POOL].fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if version is None:
        raise RuntimeError("the vector extension is missing")
    return {"pgvector": version}


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, vector=True))
    app[HEALTH_CHECKS]["pgvector"] = _check_pgvector
    return app
