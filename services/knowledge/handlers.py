"""What the knowledge service does with each event it consumes: ``REGISTRY`` maps each event
class to its handlers, each ``on_<event>(event, *, deps)``; ``bootstrap`` builds the deps."""
from __future__ import annotations

import asyncpg

from common import events as ev
from common.handlers import Registry, prefetch, touches
from services.knowledge import service
from services.knowledge.embeddings import Embedder, Embedders
from services.knowledge.fetch import Fetcher
from services.knowledge.service import Extractor, KnowledgeDeps
from services.knowledge.settings import Settings


def bootstrap(settings: Settings, pool: asyncpg.Pool, bus=None, *,
              local_embedder: Embedder | None = None) -> KnowledgeDeps:
    """``local_embedder`` lets tests share one loaded local model between apps (not closed)."""
    return KnowledgeDeps(
        pool=pool, settings=settings,
        embedders=Embedders(openai_api_key=settings.openai_api_key, openai_base_url=settings.openai_base_url,
                            local=local_embedder, local_workers=settings.embed_workers),
        fetcher=Fetcher(allow_networks=settings.fetch_allow_networks, timeout_s=settings.fetch_timeout_s,
                        max_bytes=settings.fetch_max_bytes, max_redirects=settings.fetch_max_redirects,
                        user_agent=settings.fetch_user_agent),
        extractor=Extractor(settings.extract_timeout_s, settings.extract_memory_mb * 1024 ** 2,
                            settings.extract_workers),
        owns_embedders=local_embedder is None)


# Several documents at a time, so their passages share embedding calls (PassageBatcher); the
# embedding itself runs at a low CPU priority, the rest wait in the queue.
@prefetch(lambda deps: deps.settings.ingest_concurrency)
@touches("documents", "chunks", "chunk_terms", "knowledge_bases", "outbox")
async def on_document_ingest_requested(event: ev.DocumentIngestRequestedEvent, *, deps: KnowledgeDeps) -> None:
    await service.ingest(event, deps)


@touches("knowledge_bases", "documents", "chunks", "chunk_terms", "crawls")
async def on_chatbot_deleted(event: ev.ChatbotDeletedEvent, *, deps: KnowledgeDeps) -> None:
    await service.delete_chatbot(deps, event)


@touches("knowledge_bases", "documents", "chunks", "chunk_terms", "crawls")
async def on_tenant_deleted(event: ev.TenantDeletedEvent, *, deps: KnowledgeDeps) -> None:
    await service.delete_tenant(deps, event)


REGISTRY: Registry = {
    ev.DocumentIngestRequestedEvent: [on_document_ingest_requested],
    ev.ChatbotDeletedEvent: [on_chatbot_deleted],
    ev.TenantDeletedEvent: [on_tenant_deleted],
}
