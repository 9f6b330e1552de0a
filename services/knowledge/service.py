"""The knowledge use cases: add documents, ingest them, search them. No aiohttp here."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace as with_changes
from typing import Any

import asyncpg
import numpy as np

from common import events as ev
from common.db import claim, enqueue, handled
from common.errors import ServiceError
from common.isolation import IsolatedWorkers, WorkerFailed
from common.logging import get_logger
from services.knowledge import repository as repo
from services.knowledge.embeddings import (INDEXED_DIMENSIONS, LOCAL_MODEL, OPENAI_DIMENSIONS, EmbeddingError,
                                           Embedders, passage_input)
from services.knowledge.extract import ExtractionError, prepare
from services.knowledge.fetch import Fetcher, FetchError
from services.knowledge.ranking import Fusion, RankedList, fuse
from services.knowledge.settings import Settings

log = get_logger(__name__)


class KnowledgeError(ServiceError):
    """A request knowledge refuses (common.errors: answered with its status by common.web)."""


def not_found(what: str) -> KnowledgeError:
    return KnowledgeError(404, "not_found", f"no such {what}")


def plan_limit_reached(max_documents: int) -> KnowledgeError:
    return KnowledgeError(403, "plan_limit_reached", f"your plan allows {max_documents} documents",
                          {"limit": "max_documents", "value": max_documents})


async def make_room(conn, tenant_id: uuid.UUID, max_documents: int | None) -> int | None:
    """Inside the insert transaction: lock the tenant's document count, then check it, so
    concurrent uploads and crawls cannot both take the last place. Returns the room left
    (None: no limit; the gateway passes the plan's ``max_documents``)."""
    if max_documents is None:
        return None
    await repo.lock_tenant(conn, tenant_id)
    room = max_documents - await repo.count_tenant_documents(conn, tenant_id)
    if room <= 0:
        raise plan_limit_reached(max_documents)
    return room


class Extractor:
    """Parsing runs in worker processes (``common.isolation``): pypdf and lxml hold the GIL,
    and a hostile file costs a worker with a memory ceiling and a deadline, never the service.
    Crawls parse sitemaps and pages for links there too."""

    def __init__(self, timeout_s: float, memory_bytes: int = 768 * 1024 ** 2, processes: int = 1):
        self.timeout_s = timeout_s
        self.workers = IsolatedWorkers(processes=processes, memory_bytes=memory_bytes, timeout_s=timeout_s,
                                       preload=("pypdf", "docx", "trafilatura", "lxml.html"))

    async def run(self, fn, *args, **kwargs):
        """``fn`` in a worker; a worker that ran out of time or memory, or died, is
        ``ExtractionError`` with the reason a tenant reads."""
        try:
            return await self.workers.run(fn, *args, **kwargs)
        except WorkerFailed as exc:
            reason = {"timeout": f"parsing took longer than {self.timeout_s:g} s",
                      "memory": f"parsing needed more than {self.workers.memory_bytes // 2 ** 20} MB of memory",
                      }.get(exc.kind, "the file crashed the parser")
            raise ExtractionError(reason) from None

    async def prepare(self, raw: bytes, **kwargs) -> dict:
        return await self.run(prepare, raw, **kwargs)

    def close(self) -> None:
        self.workers.close()


@dataclass
class KnowledgeDeps:
    pool: asyncpg.Pool
    settings: Settings
    embedders: Embedders
    fetcher: Fetcher
    extractor: Extractor
    crawls: dict[uuid.UUID, asyncio.Task] = field(default_factory=dict)
    owns_embedders: bool = True
    _lexical_stats: OrderedDict = field(default_factory=OrderedDict)

    async def close(self) -> None:
        """Shutdown: crawls cancelled (and recorded), the fetcher, the parser processes."""
        crawls = list(self.crawls.values())
        for task in crawls:
            task.cancel()
        if crawls:
            await asyncio.gather(*crawls, return_exceptions=True)
        await self.fetcher.close()
        self.extractor.close()
        if self.owns_embedders:
            self.embedders.close()

    async def lexical_stats(self, chatbot_id: uuid.UUID, knowledge_version: int) -> tuple[int, float]:
        """BM25's N and average length for one chatbot. Every index and delete bumps the
        knowledge version, so figures kept per (chatbot, version) are never stale."""
        key = (chatbot_id, knowledge_version)
        stats = self._lexical_stats.get(key)
        if stats is None:
            async with self.pool.acquire() as conn:
                stats = await repo.lexical_stats(conn, chatbot_id)
            self._lexical_stats[key] = stats
            if len(self._lexical_stats) > 1024:
                self._lexical_stats.popitem(last=False)
        return stats


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def knowledge_base(conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
    kb = await repo.ensure_knowledge_base(conn, tenant_id, chatbot_id)
    if kb is None:
        raise not_found("chatbot")
    return kb


def _ingest_event(tenant_id: uuid.UUID, chatbot_id: uuid.UUID, document_id: uuid.UUID):
    return ev.DocumentIngestRequestedEvent(tenant_id=tenant_id, chatbot_id=chatbot_id, document_id=document_id)


# --- adding documents ------------------------------------------------------------------------

async def add_document(deps: KnowledgeDeps, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, *, raw: bytes,
                       filename: str | None, content_type: str | None, title: str | None,
                       source: str = "upload", max_documents: int | None = None):
    """Store the bytes and queue the document, with its ingest request, in one transaction."""
    if not raw:
        raise KnowledgeError(422, "empty_document", "the document is empty")
    if len(raw) > deps.settings.max_upload_bytes:
        raise KnowledgeError(413, "payload_too_large",
                             f"documents are limited to {deps.settings.max_upload_bytes} bytes")
    sha = _sha(raw)
    async with deps.pool.acquire() as conn, conn.transaction():
        await knowledge_base(conn, tenant_id, chatbot_id)
        existing = await repo.document_with_raw_hash(conn, chatbot_id, sha)
        if existing is not None:
            raise KnowledgeError(409, "duplicate_document", "this content is already in the knowledge base",
                                 {"document_id": str(existing)})
        await make_room(conn, tenant_id, max_documents)
        document_id = uuid.uuid4()
        event = _ingest_event(tenant_id, chatbot_id, document_id)
        document = await repo.insert_document(
            conn, document_id=document_id, tenant_id=tenant_id, chatbot_id=chatbot_id, source=source,
            title=title, filename=filename, content_type=content_type, raw=raw, raw_sha256=sha,
            ingest_event_id=event.event_id)
        await enqueue(conn, event)
    log.info("document_queued", document_id=str(document_id), source=source, bytes=len(raw))
    return document


async def add_url(deps: KnowledgeDeps, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, url: str,
                  title: str | None, *, source: str = "url", crawl_id: uuid.UUID | None = None,
                  raw: bytes | None = None, content_type: str | None = None, conflict_ok: bool = False,
                  max_documents: int | None = None):
    """A URL document; the handler fetches it (unless a crawl already did)."""
    async with deps.pool.acquire() as conn, conn.transaction():
        await knowledge_base(conn, tenant_id, chatbot_id)
        await make_room(conn, tenant_id, max_documents)
        document_id = uuid.uuid4()
        event = _ingest_event(tenant_id, chatbot_id, document_id)
        document = await repo.insert_document(
            conn, document_id=document_id, tenant_id=tenant_id, chatbot_id=chatbot_id, source=source,
            title=title, url=url, raw=raw, raw_sha256=_sha(raw) if raw else None, content_type=content_type,
            crawl_id=crawl_id, ingest_event_id=event.event_id)
        if document is None:
            if conflict_ok:
                return None
            existing = await repo.document_with_url(conn, chatbot_id, url)
            raise KnowledgeError(409, "duplicate_document", "this URL is already in the knowledge base",
                                 {"document_id": str(existing)})
        await enqueue(conn, event)
    return document


async def get_document(deps: KnowledgeDeps, tenant_id, chatbot_id, document_id):
    async with deps.pool.acquire() as conn:
        await knowledge_base(conn, tenant_id, chatbot_id)
        document = await repo.get_document(conn, chatbot_id, document_id)
    if document is None:
        raise not_found("document")
    return document


async def resync(deps: KnowledgeDeps, tenant_id, chatbot_id, document_id):
    """Ingest again; URL documents are fetched again."""
    return await _requeue(deps, tenant_id, chatbot_id, document_id,
                          lambda document: {"keep_raw": False, "raw": None} if document["url"] else {})


async def _requeue(deps: KnowledgeDeps, tenant_id, chatbot_id, document_id, changes):
    """Queue a document for ingestion again; ``changes(document)`` says what to replace."""
    async with deps.pool.acquire() as conn, conn.transaction():
        await knowledge_base(conn, tenant_id, chatbot_id)
        document = await repo.get_document(conn, chatbot_id, document_id, for_update=True)
        if document is None:
            raise not_found("document")
        event = _ingest_event(tenant_id, chatbot_id, document_id)
        await repo.requeue_document(conn, document_id, event.event_id, **changes(document))
        await enqueue(conn, event)
        return await repo.get_document(conn, chatbot_id, document_id)


async def replace(deps: KnowledgeDeps, tenant_id, chatbot_id, document_id, *, raw: bytes,
                  filename: str | None, content_type: str | None, title: str | None):
    if not raw:
        raise KnowledgeError(422, "empty_document", "the document is empty")
    if len(raw) > deps.settings.max_upload_bytes:
        raise KnowledgeError(413, "payload_too_large",
                             f"documents are limited to {deps.settings.max_upload_bytes} bytes")
    return await _requeue(deps, tenant_id, chatbot_id, document_id, lambda _: {
        "keep_raw": False, "raw": raw, "filename": filename, "content_type": content_type,
        "raw_sha256": _sha(raw), "title": title})


async def delete(deps: KnowledgeDeps, tenant_id, chatbot_id, document_id) -> int:
    async with deps.pool.acquire() as conn, conn.transaction():
        await knowledge_base(conn, tenant_id, chatbot_id)
        if not await repo.delete_document(conn, chatbot_id, document_id):
            raise not_found("document")
        version = await repo.bump_knowledge_version(conn, chatbot_id)
        await enqueue(conn, ev.DocumentDeletedEvent(tenant_id=tenant_id, chatbot_id=chatbot_id,
                                                    document_id=document_id, knowledge_version=version))
    log.info("document_deleted", document_id=str(document_id), knowledge_version=version)
    return version


# --- settings --------------------------------------------------------------------------------

async def update_settings(deps: KnowledgeDeps, tenant_id, chatbot_id, changes: dict) -> tuple[Any, int]:
    """Apply settings; a new chunking or embedding model re-ingests every document. Search
    keeps answering from the old model's chunks until each document is re-embedded."""
    if changes.get("embedding_provider") == "local":
        changes.setdefault("embedding_model", LOCAL_MODEL)
        changes["embedding_dim"] = 384
        if changes["embedding_model"] != LOCAL_MODEL:
            raise KnowledgeError(422, "validation_error", f"the local provider only has {LOCAL_MODEL}")
    elif changes.get("embedding_provider") == "openai":
        model = changes.setdefault("embedding_model", "text-embedding-3-small")
        changes.setdefault("embedding_dim", OPENAI_DIMENSIONS.get(model, 1536))
        if not deps.settings.openai_api_key:
            raise KnowledgeError(409, "embedding_unavailable", "OpenAI embeddings need OPENAI_API_KEY on the server")
        if changes["embedding_dim"] not in INDEXED_DIMENSIONS:
            raise KnowledgeError(422, "validation_error", f"embedding_dim must be one of {INDEXED_DIMENSIONS}")
    if changes.get("chunk_overlap") is not None and changes.get("chunk_size") is not None \
            and changes["chunk_overlap"] * 2 > changes["chunk_size"]:
        raise KnowledgeError(409, "settings_conflict", "chunk_overlap must be at most half of chunk_size")
    reingest = 0
    async with deps.pool.acquire() as conn, conn.transaction():
        kb = await knowledge_base(conn, tenant_id, chatbot_id)
        current = {**dict(kb), "text_search_config": kb["ts_config"]}
        changes = {k: v for k, v in changes.items() if v is not None and current[k] != v}
        if not changes:
            return kb, 0
        merged = {**current, **changes}
        if merged["chunk_overlap"] * 2 > merged["chunk_size"]:
            raise KnowledgeError(409, "settings_conflict", "chunk_overlap must be at most half of chunk_size")
        # documents before the knowledge base: the same lock order as ingestion and delete
        document_ids = await repo.documents_of(conn, chatbot_id, for_update=True)
        kb = await repo.update_knowledge_base(conn, chatbot_id, changes)
        if {"chunk_size", "chunk_overlap", "embedding_provider", "embedding_model", "embedding_dim",
                "text_search_config"} & changes.keys():
            events = []
            for document_id in document_ids:
                event = _ingest_event(tenant_id, chatbot_id, document_id)
                await repo.requeue_document(conn, document_id, event.event_id)
                events.append(event)
            if events:
                await enqueue(conn, *events)
            reingest = len(events)
    return kb, reingest


# --- ingestion -------------------------------------------------------------------------------

async def ingest(event: ev.DocumentIngestRequestedEvent, deps: KnowledgeDeps) -> None:
    """Fetch (URL documents), extract, chunk, embed in batches with progress, then swap the
    document's chunks in one transaction. Unusable input fails the document with a reason;
    infrastructure errors raise, so the bus retries."""
    started = time.perf_counter()
    async with deps.pool.acquire() as conn:
        if await handled(conn, event):
            return
        document = await repo.document_for_ingest(conn, event.document_id)
        if document is None or document["ingest_event_id"] != event.event_id:
            async with conn.transaction():
                await claim(conn, event)  # deleted, or superseded by a newer request
            return
        kb = await repo.get_knowledge_base(conn, document["chatbot_id"])
        await repo.mark_processing(conn, document["id"], event.event_id)

    try:
        raw, content_type = document["raw"], document["content_type"]
        if raw is None and document["url"]:
            fetched = await deps.fetcher.fetch(document["url"])
            raw, content_type = fetched.body, fetched.content_type
            async with deps.pool.acquire() as conn:
                await repo.store_fetched(conn, document["id"], event.event_id, raw, content_type, _sha(raw))
        if raw is None:
            raise ExtractionError("the document has no content")
        prepared = await deps.extractor.prepare(
            raw, content_type=content_type, filename=document["filename"], url=document["url"],
            chunk_size=kb["chunk_size"], chunk_overlap=kb["chunk_overlap"])
        async with deps.pool.acquire() as conn:
            duplicate = await repo.duplicate_content(conn, document["chatbot_id"], document["id"],
                                                     prepared["content_sha256"])
        if duplicate is not None:
            raise ExtractionError(f"duplicate: the same content is already indexed as document {duplicate}")
    except (ExtractionError, FetchError) as exc:
        await _fail(deps, event, str(exc))
        return

    title = document["title"] or prepared["title"] or document["filename"] or document["url"]
    chunks = prepared["chunks"]
    batch = deps.settings.embed_batch_size
    vectors = []
    try:
        embedder = deps.embedders.get(kb["embedding_provider"], kb["embedding_model"], kb["embedding_dim"])
        for start in range(0, len(chunks), batch):
            part = chunks[start:start + batch]
            vectors.extend(await embedder.embed_passages(
                [passage_input(title, heading_path, text) for text, heading_path, _, _ in part]))
            if len(vectors) < len(chunks):  # a one-batch document goes straight to indexed
                async with deps.pool.acquire() as conn:
                    await repo.set_progress(conn, document["id"], event.event_id, len(chunks), len(vectors))
    except asyncpg.PostgresError:
        raise
    except Exception as exc:  # noqa: BLE001 - a provider refusing (bad key, quota) fails the document
        log.warning("embedding_failed", document_id=str(document["id"]), error=repr(exc))
        await _fail(deps, event, f"embedding failed: {type(exc).__name__}: {str(exc)[:300]}")
        return

    rows = [(position, title, document["url"], heading_path, text, tokens, vector)
            for (text, heading_path, position, tokens), vector in zip(chunks, vectors)]
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        if await repo.current_ingest(conn, document["id"], for_update=True) != event.event_id:
            return  # deleted or replaced while we worked: the newer request wins
        await repo.replace_chunks(conn, document, ts_config=kb["ts_config"], model=embedder.model,
                                  dim=embedder.dim, rows=rows)
        await repo.mark_indexed(conn, document["id"], title=title, content_sha256=prepared["content_sha256"],
                                chunk_count=len(rows), token_count=sum(r[5] for r in rows))
        version = await repo.bump_knowledge_version(conn, document["chatbot_id"])
        await enqueue(conn, ev.DocumentIndexedEvent(tenant_id=document["tenant_id"], chatbot_id=document["chatbot_id"],
                                                    document_id=document["id"], chunks=len(rows),
                                                    knowledge_version=version))
    log.info("document_indexed", document_id=str(document["id"]), chunks=len(rows), kind=prepared["kind"],
             ms=round((time.perf_counter() - started) * 1000))


async def _fail(deps: KnowledgeDeps, event: ev.DocumentIngestRequestedEvent, reason: str) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        if await repo.current_ingest(conn, event.document_id, for_update=True) != event.event_id:
            return
        await repo.mark_failed(conn, event.document_id, reason)
        await enqueue(conn, ev.DocumentFailedEvent(tenant_id=event.tenant_id, chatbot_id=event.chatbot_id,
                                                   document_id=event.document_id, reason=reason[:1000]))
    log.info("document_failed", document_id=str(event.document_id), reason=reason)


# --- search ----------------------------------------------------------------------------------

# Each list of a search keeps this many candidates, whatever top_k asks for: fusion needs
# depth to rescue a chunk that one side ranks low.
CANDIDATE_DEPTH = 50
# the query is embedded from at most this much text (the model reads 512 tokens at a time)
MAX_QUERY_CHARS = 2000
# the measured default (docs/knowledge.md, "Ranking"): cosine min-max normalised over the best
# ten, plus BM25 as the share of the question covered; the message read with its context
# weighs 1.3 against 1
DEFAULT_FUSION = Fusion(method="cc", dense_weight=1.0, lexical_weight=1.0, dense_norm="minmax",
                        lexical_norm="absolute", context_weight=1.3, depth=CANDIDATE_DEPTH, norm_window=10)


@dataclass
class RankedChunk:
    chunk_id: int
    document_id: uuid.UUID
    title: str
    url: str | None
    heading_path: list[str]
    snippet: str
    score: float
    fused: float

    def as_dict(self) -> dict:
        return {"title": self.title, "url": self.url, "snippet": self.snippet, "score": round(self.score, 4),
                "document_id": str(self.document_id), "chunk_id": self.chunk_id,
                "heading_path": self.heading_path}


def contextual_query(message: str, context: list[str]) -> str | None:
    """The message read in its conversation (what ``common.events.search_context`` sends:
    the visitor's previous turns and the assistant's last reply), then the new message, for a
    follow-up such as "how long does it take?". None without context."""
    turns = [t.strip() for t in context if t and t.strip()]
    if not turns:
        return None
    return " ".join([*turns, message.strip()])[-MAX_QUERY_CHARS:]


@dataclass
class Candidates:
    """One query's candidates from both sides, with its vector."""
    query: str
    weight: float
    dense: list
    lexical: list
    vector: np.ndarray


async def search(deps: KnowledgeDeps, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, query: str, *,
                 top_k: int | None = None, score_threshold: float | None = None, context: list[str] | None = None,
                 fusion: Fusion | None = None, mode: str = "hybrid") -> tuple[list[RankedChunk], int]:
    """Hybrid search of one chatbot's knowledge: dense vectors and BM25, fused (``ranking``).
    With ``context`` (the visitor's previous turns) the message is also searched in context
    and both readings are fused. ``score`` is the chunk's best cosine similarity to a reading
    of the query; the threshold applies to it."""
    fusion = fusion or DEFAULT_FUSION
    if mode == "dense":
        fusion = with_changes(fusion, lexical_weight=0.0)
    elif mode == "lexical":
        fusion = with_changes(fusion, dense_weight=0.0)
    async with deps.pool.acquire() as conn:
        kb = await repo.search_settings(conn, chatbot_id)
        if kb is None:
            return [], 0
        if kb["tenant_id"] != tenant_id:
            raise not_found("chatbot")
        if kb["chunks"] == 0 or not query.strip():
            return [], kb["knowledge_version"]
        top_k = top_k or kb["top_k"]
        threshold = kb["score_threshold"] if score_threshold is None else score_threshold
    try:
        embedder = deps.embedders.get(kb["embedding_provider"], kb["embedding_model"], kb["embedding_dim"])
    except EmbeddingError as exc:
        raise KnowledgeError(503, "embedding_unavailable", str(exc)) from None
    readings = [(query.strip()[:MAX_QUERY_CHARS], 1.0)]
    in_context = contextual_query(query, context or [])
    if in_context is not None and fusion.context_weight > 0:
        readings.append((in_context, fusion.context_weight))
    stats = await deps.lexical_stats(chatbot_id, kb["knowledge_version"])
    candidates = await gather_candidates(
        deps.pool, embedder, chatbot_id=chatbot_id, readings=readings, ts_config=kb["ts_config"],
        depth=max(fusion.depth, top_k), exact=kb["chunks"] <= deps.settings.exact_search_max_chunks,
        ef_search=deps.settings.hnsw_ef_search, lexical_timeout_ms=deps.settings.text_search_timeout_ms,
        stats=stats)
    return rank(candidates, fusion, top_k=top_k, threshold=threshold), kb["knowledge_version"]


async def gather_candidates(pool: asyncpg.Pool, embedder, *, chatbot_id: uuid.UUID,
                            readings: list[tuple[str, float]], ts_config: str, depth: int, exact: bool,
                            ef_search: int, stats: tuple[int, float], lexical_timeout_ms: int = 0,
                            vectors: list[np.ndarray] | None = None) -> list[Candidates]:
    """Both sides of every reading. The BM25 queries start at once, each on its own
    connection, while the readings are embedded; the vector searches follow."""
    chunks, avgdl = stats

    async def lexical(text: str):
        async with pool.acquire() as conn:
            return await repo.lexical_candidates(conn, chatbot_id=chatbot_id, model=embedder.model, dim=embedder.dim,
                                                 query_text=text, ts_config=ts_config, limit=depth, chunks=chunks,
                                                 avgdl=avgdl, timeout_ms=lexical_timeout_ms)

    async def dense(vector: np.ndarray):
        async with pool.acquire() as conn:
            return await repo.vector_candidates(conn, chatbot_id=chatbot_id, model=embedder.model, dim=embedder.dim,
                                                query_vector=vector, limit=depth, exact=exact, ef_search=ef_search)

    lexical_tasks = [asyncio.create_task(lexical(text)) for text, _ in readings]
    try:
        if vectors is None:
            vectors = await embedder.embed_queries([text for text, _ in readings])
        dense_rows = await asyncio.gather(*(dense(v) for v in vectors))
        lexical_rows = await asyncio.gather(*lexical_tasks)
    except BaseException:
        for task in lexical_tasks:
            task.cancel()
        raise
    return [Candidates(query=text, weight=weight, dense=sorted(d, key=lambda r: r["distance"]), lexical=lx,
                       vector=v)
            for (text, weight), d, lx, v in zip(readings, dense_rows, lexical_rows, vectors)]


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def rank(candidates: list[Candidates], fusion: Fusion, *, top_k: int, threshold: float) -> list[RankedChunk]:
    """Fuse every list; ``score`` is the chunk's best cosine similarity over the readings."""
    similarity: dict[int, float] = {}
    lists: list[RankedList] = []
    for reading in candidates:
        q = _unit(reading.vector)
        dense_scores = [1.0 - float(r["distance"]) for r in reading.dense]
        for r, score in zip(reading.dense, dense_scores):
            similarity[r["id"]] = max(similarity.get(r["id"], -1.0), score)
        for r in reading.lexical:
            score = float(_unit(r["embedding"]) @ q)
            similarity[r["id"]] = max(similarity.get(r["id"], -1.0), score)
        lists.append(RankedList("dense", reading.dense, dense_scores, reading.weight * fusion.dense_weight))
        lists.append(RankedList("lexical", reading.lexical, [float(r["bm25"]) for r in reading.lexical],
                                reading.weight * fusion.lexical_weight,
                                scale=float(reading.lexical[0]["query_idf"]) if reading.lexical else 1.0))
    results = []
    for record, fused in fuse(lists, fusion):
        score = similarity[record["id"]]
        if score < threshold:
            continue
        results.append(RankedChunk(chunk_id=record["id"], document_id=record["document_id"],
                                    title=record["title"] or "", url=record["url"],
                                    heading_path=list(record["heading_path"] or []),
                                    snippet=record["text"][:600], score=score, fused=fused))
        if len(results) == top_k:
            break
    return results


async def stats(deps: KnowledgeDeps, tenant_id, chatbot_id) -> dict:
    async with deps.pool.acquire() as conn:
        kb = await knowledge_base(conn, tenant_id, chatbot_id)
        numbers = await repo.stats(conn, chatbot_id)
    return {**numbers, "knowledge_version": kb["knowledge_version"], "last_sync_at": kb["last_sync_at"],
            "embedding_model": kb["embedding_model"]}


# --- lifecycles --------------------------------------------------------------------------------

async def delete_chatbot(deps: KnowledgeDeps, event: ev.ChatbotDeletedEvent) -> None:
    """Everything the chatbot's knowledge held goes, so its documents stop counting against
    the plan's ``max_documents`` at once. Crawls of it running here stop; one running on another
    replica fails at its next document (the knowledge base is gone)."""
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await _delete_chatbot(deps, conn, event.tenant_id, event.chatbot_id)
    log.info("chatbot_knowledge_deleted", chatbot_id=str(event.chatbot_id))


async def delete_tenant(deps: KnowledgeDeps, event: ev.TenantDeletedEvent) -> None:
    async with deps.pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        for chatbot_id in await repo.tenant_chatbots(conn, event.tenant_id):
            await _delete_chatbot(deps, conn, event.tenant_id, chatbot_id)
    log.info("tenant_knowledge_deleted")


async def _delete_chatbot(deps: KnowledgeDeps, conn, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> None:
    for crawl_id in await repo.delete_chatbot(conn, tenant_id, chatbot_id):
        task = deps.crawls.get(crawl_id)
        if task is not None:
            task.cancel()
