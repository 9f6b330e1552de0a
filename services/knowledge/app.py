"""knowledge service app factory."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp import web

from common import events as ev
from common.bus import Bus
from common.web import HEALTH_CHECKS, POOL, make_app, service_context
from services.knowledge import service, views
from services.knowledge.embeddings import Embedder, Embedders
from services.knowledge.fetch import Fetcher
from services.knowledge.service import Extractor, KnowledgeDeps
from services.knowledge.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def _check_pgvector(app: web.Application) -> dict:
    version = await app[POOL].fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    if version is None:
        raise RuntimeError("the vector extension is missing")
    return {"pgvector": version}


def _deps_ctx(settings: Settings, local_embedder: Embedder | None):
    """Tears down what ``_subscribe`` built: crawls, the fetcher, the parser process."""

    async def ctx(app: web.Application):
        yield
        deps = app.get(views.DEPS)
        if deps is None:
            return
        crawls = list(deps.crawls.values())
        for task in crawls:
            task.cancel()
        if crawls:
            await asyncio.gather(*crawls, return_exceptions=True)
        await deps.fetcher.close()
        deps.extractor.close()
        if local_embedder is None:
            deps.embedders.close()

    return ctx


def _subscribe(settings: Settings, local_embedder: Embedder | None):
    def subscribe(app: web.Application, bus: Bus) -> None:
        deps = KnowledgeDeps(
            pool=app[POOL], settings=settings,
            embedders=Embedders(openai_api_key=settings.openai_api_key, openai_base_url=settings.openai_base_url,
                                local=local_embedder, local_workers=settings.embed_workers),
            fetcher=Fetcher(allow_networks=settings.fetch_allow_networks, timeout_s=settings.fetch_timeout_s,
                            max_bytes=settings.fetch_max_bytes, max_redirects=settings.fetch_max_redirects,
                            user_agent=settings.fetch_user_agent),
            extractor=Extractor(settings.extract_timeout_s, settings.extract_memory_mb * 1024 ** 2,
                                settings.extract_workers))
        app[views.DEPS] = deps

        async def on_document_ingest_requested(event: ev.DocumentIngestRequestedEvent) -> None:
            await service.ingest(event, deps)

        # Several documents at a time, so their passages share embedding calls (PassageBatcher);
        # the embedding itself runs at a low CPU priority, the rest wait in the queue.
        bus.subscribe(ev.DocumentIngestRequestedEvent, on_document_ingest_requested,
                      prefetch=settings.ingest_concurrency)
    return subscribe


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None, local_embedder: Embedder | None = None) -> web.Application:
    """``local_embedder`` lets tests share one loaded local model between apps (not closed here)."""
    settings = settings or Settings()
    app = make_app(settings, middlewares=[views.knowledge_errors],
                   client_max_size=settings.max_upload_bytes + 1024 ** 2)
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, vector=True,
                                           subscribe=_subscribe(settings, local_embedder)))
    # after service_context, so crawls are cancelled (and recorded) before the pool closes
    app.cleanup_ctx.append(_deps_ctx(settings, local_embedder))
    app[HEALTH_CHECKS]["pgvector"] = _check_pgvector
    app.router.add_routes(views.routes)
    return app
