"""All SQL of the knowledge service."""
from __future__ import annotations

import uuid
from typing import Any, Sequence

import asyncpg
import numpy as np

DOCUMENT_COLUMNS = ("id, tenant_id, chatbot_id, source, title, url, filename, content_type, raw_sha256, "
                    "content_sha256, crawl_id, status, reason, chunks_total, chunks_embedded, chunk_count, "
                    "token_count, created_at, updated_at, indexed_at, octet_length(raw) AS size_bytes")
KB_SETTINGS = ("chunk_size", "chunk_overlap", "embedding_provider", "embedding_model", "embedding_dim",
               "text_search_config", "top_k", "score_threshold")


# --- knowledge bases ---------------------------------------------------------------------------

async def ensure_knowledge_base(conn: asyncpg.Connection, tenant_id: uuid.UUID,
                                chatbot_id: uuid.UUID) -> asyncpg.Record | None:
    """The chatbot's knowledge base, created on first use; None if it belongs to another tenant."""
    await conn.execute("INSERT INTO knowledge_bases (chatbot_id, tenant_id) VALUES ($1, $2) "
                       "ON CONFLICT (chatbot_id) DO NOTHING", chatbot_id, tenant_id)
    row = await get_knowledge_base(conn, chatbot_id)
    return row if row is not None and row["tenant_id"] == tenant_id else None


async def get_knowledge_base(conn: asyncpg.Connection, chatbot_id: uuid.UUID,
                             *, for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT *, text_search_config::text AS ts_config FROM knowledge_bases WHERE chatbot_id = $1"
        + (" FOR UPDATE" if for_update else ""), chatbot_id)


async def update_knowledge_base(conn: asyncpg.Connection, chatbot_id: uuid.UUID,
                                changes: dict[str, Any]) -> asyncpg.Record:
    assigns, values = [], []
    for i, (name, value) in enumerate(changes.items(), start=2):
        assert name in KB_SETTINGS, name
        cast = "::regconfig" if name == "text_search_config" else ""
        assigns.append(f"{name} = ${i}{cast}")
        values.append(value)
    await conn.execute(f"UPDATE knowledge_bases SET {', '.join(assigns)}, updated_at = now() "
                       "WHERE chatbot_id = $1", chatbot_id, *values)
    return await get_knowledge_base(conn, chatbot_id)


async def bump_knowledge_version(conn: asyncpg.Connection, chatbot_id: uuid.UUID) -> int:
    return await conn.fetchval(
        "UPDATE knowledge_bases SET knowledge_version = knowledge_version + 1, last_sync_at = now() "
        "WHERE chatbot_id = $1 RETURNING knowledge_version", chatbot_id)


async def search_settings(conn: asyncpg.Connection, chatbot_id: uuid.UUID) -> asyncpg.Record | None:
    """The knowledge base with its indexed chunk count (which picks exact or HNSW search)."""
    return await conn.fetchrow(
        "SELECT k.*, k.text_search_config::text AS ts_config, (SELECT coalesce(sum(chunk_count), 0) "
        "FROM documents d WHERE d.chatbot_id = k.chatbot_id AND d.status = 'indexed') AS chunks "
        "FROM knowledge_bases k WHERE k.chatbot_id = $1", chatbot_id)


async def knowledge_version(conn: asyncpg.Connection, chatbot_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT knowledge_version FROM knowledge_bases WHERE chatbot_id = $1",
                               chatbot_id) or 0


async def stats(conn: asyncpg.Connection, chatbot_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT count(*) AS documents, "
        "count(*) FILTER (WHERE status = 'queued') AS queued, "
        "count(*) FILTER (WHERE status = 'processing') AS processing, "
        "count(*) FILTER (WHERE status = 'indexed') AS indexed, "
        "count(*) FILTER (WHERE status = 'failed') AS failed, "
        "coalesce(sum(chunk_count) FILTER (WHERE status = 'indexed'), 0) AS chunks, "
        "coalesce(sum(token_count) FILTER (WHERE status = 'indexed'), 0) AS tokens, "
        "coalesce(sum(octet_length(raw)), 0) AS stored_bytes "
        "FROM documents WHERE chatbot_id = $1", chatbot_id)
    return dict(row)


# --- documents ---------------------------------------------------------------------------------

async def insert_document(conn: asyncpg.Connection, *, document_id: uuid.UUID, tenant_id: uuid.UUID,
                          chatbot_id: uuid.UUID, source: str, title: str | None = None,
                          url: str | None = None, filename: str | None = None,
                          content_type: str | None = None, raw: bytes | None = None,
                          raw_sha256: str | None = None, crawl_id: uuid.UUID | None = None,
                          ingest_event_id: uuid.UUID) -> asyncpg.Record | None:
    """None when a URL is already a document of this chatbot."""
    inserted = await conn.fetchval(
        "INSERT INTO documents (id, tenant_id, chatbot_id, source, title, url, filename, content_type, raw, "
        "raw_sha256, crawl_id, ingest_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (chatbot_id, url) WHERE source IN ('url', 'crawl') DO NOTHING RETURNING id",
        document_id, tenant_id, chatbot_id, source, title, url, filename, content_type, raw, raw_sha256,
        crawl_id, ingest_event_id)
    return await get_document(conn, chatbot_id, inserted) if inserted else None


async def document_with_raw_hash(conn: asyncpg.Connection, chatbot_id: uuid.UUID, sha: str):
    return await conn.fetchval("SELECT id FROM documents WHERE chatbot_id = $1 AND raw_sha256 = $2 LIMIT 1",
                               chatbot_id, sha)


async def document_with_url(conn: asyncpg.Connection, chatbot_id: uuid.UUID, url: str):
    return await conn.fetchval("SELECT id FROM documents WHERE chatbot_id = $1 AND url = $2 "
                               "AND source IN ('url', 'crawl')", chatbot_id, url)


async def duplicate_content(conn: asyncpg.Connection, chatbot_id: uuid.UUID, document_id: uuid.UUID,
                            sha: str):
    return await conn.fetchval(
        "SELECT id FROM documents WHERE chatbot_id = $1 AND content_sha256 = $2 AND id <> $3 "
        "AND status = 'indexed' ORDER BY created_at LIMIT 1", chatbot_id, sha, document_id)


async def get_document(conn: asyncpg.Connection, chatbot_id: uuid.UUID, document_id: uuid.UUID,
                       *, for_update: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE id = $1 AND chatbot_id = $2"
                               + (" FOR UPDATE" if for_update else ""), document_id, chatbot_id)


async def document_for_ingest(conn: asyncpg.Connection, document_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {DOCUMENT_COLUMNS}, raw, ingest_event_id FROM documents WHERE id = $1",
                               document_id)


async def current_ingest(conn: asyncpg.Connection, document_id: uuid.UUID,
                         *, for_update: bool = False) -> uuid.UUID | None:
    return await conn.fetchval("SELECT ingest_event_id FROM documents WHERE id = $1"
                               + (" FOR UPDATE" if for_update else ""), document_id)


async def list_documents(conn: asyncpg.Connection, chatbot_id: uuid.UUID, *, status: str | None,
                         limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE chatbot_id = $1 AND ($2::text IS NULL OR status = $2) "
        "ORDER BY created_at DESC, id LIMIT $3 OFFSET $4", chatbot_id, status, limit, offset)


async def requeue_document(conn: asyncpg.Connection, document_id: uuid.UUID, ingest_event_id: uuid.UUID,
                           *, raw: bytes | None = None, keep_raw: bool = True, filename: str | None = None,
                           content_type: str | None = None, raw_sha256: str | None = None,
                           title: str | None = None) -> None:
    """Queue a document again (re-sync, replace, re-embedding). Its chunks stay searchable
    until the new ones replace them."""
    if keep_raw:
        await conn.execute(
            "UPDATE documents SET status = 'queued', reason = NULL, ingest_event_id = $2, chunks_total = 0, "
            "chunks_embedded = 0, updated_at = now() WHERE id = $1", document_id, ingest_event_id)
    else:
        await conn.execute(
            "UPDATE documents SET status = 'queued', reason = NULL, ingest_event_id = $2, chunks_total = 0, "
            "chunks_embedded = 0, raw = $3, filename = coalesce($4, filename), "
            "content_type = coalesce($5, content_type), raw_sha256 = $6, title = coalesce($7, title), "
            "updated_at = now() WHERE id = $1",
            document_id, ingest_event_id, raw, filename, content_type, raw_sha256, title)


async def documents_of(conn: asyncpg.Connection, chatbot_id: uuid.UUID, *,
                       for_update: bool = False) -> list[uuid.UUID]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM documents WHERE chatbot_id = $1 ORDER BY id"
                                              + (" FOR UPDATE" if for_update else ""), chatbot_id)]


async def mark_processing(conn: asyncpg.Connection, document_id: uuid.UUID, ingest_event_id: uuid.UUID) -> bool:
    return await conn.fetchval(
        "UPDATE documents SET status = 'processing', reason = NULL, chunks_total = 0, chunks_embedded = 0, "
        "updated_at = now() WHERE id = $1 AND ingest_event_id = $2 RETURNING true",
        document_id, ingest_event_id) or False


async def store_fetched(conn: asyncpg.Connection, document_id: uuid.UUID, ingest_event_id: uuid.UUID,
                        raw: bytes, content_type: str, sha: str) -> None:
    await conn.execute("UPDATE documents SET raw = $3, content_type = $4, raw_sha256 = $5 "
                       "WHERE id = $1 AND ingest_event_id = $2",
                       document_id, ingest_event_id, raw, content_type, sha)


async def set_progress(conn: asyncpg.Connection, document_id: uuid.UUID, ingest_event_id: uuid.UUID,
                       total: int, embedded: int) -> None:
    await conn.execute("UPDATE documents SET chunks_total = $3, chunks_embedded = $4, updated_at = now() "
                       "WHERE id = $1 AND ingest_event_id = $2", document_id, ingest_event_id, total, embedded)


async def mark_failed(conn: asyncpg.Connection, document_id: uuid.UUID, reason: str) -> None:
    await conn.execute("UPDATE documents SET status = 'failed', reason = $2, updated_at = now() WHERE id = $1",
                       document_id, reason[:1000])


async def mark_indexed(conn: asyncpg.Connection, document_id: uuid.UUID, *, title: str | None,
                       content_sha256: str, chunk_count: int, token_count: int) -> None:
    await conn.execute(
        "UPDATE documents SET status = 'indexed', reason = NULL, title = coalesce(title, $2), "
        "content_sha256 = $3, chunk_count = $4, token_count = $5, chunks_total = $4, chunks_embedded = $4, "
        "indexed_at = now(), updated_at = now() WHERE id = $1",
        document_id, title, content_sha256, chunk_count, token_count)


async def delete_document(conn: asyncpg.Connection, chatbot_id: uuid.UUID, document_id: uuid.UUID) -> bool:
    return await conn.fetchval("DELETE FROM documents WHERE id = $1 AND chatbot_id = $2 RETURNING true",
                               document_id, chatbot_id) or False


# --- chunks --------------------------------------------------------------------------------------

async def replace_chunks(conn: asyncpg.Connection, document: asyncpg.Record, *, ts_config: str,
                         model: str, dim: int, rows: Sequence[tuple[int, str | None, str | None, list[str],
                                                                      str, int, np.ndarray]]) -> None:
    """rows: (position, title, url, heading_path, text, tokens, embedding)."""
    await conn.execute("DELETE FROM chunks WHERE document_id = $1", document["id"])
    await insert_chunks(conn, document["tenant_id"], document["chatbot_id"], document["id"],
                        ts_config=ts_config, model=model, dim=dim, rows=rows)


# A word in the title or headings (tsvector weight A) counts this many times in BM25's tf
# (migration 003 backfilled with the same value).
TITLE_TF = 2


async def insert_chunks(conn: asyncpg.Connection, tenant_id, chatbot_id, document_id, *, ts_config: str,
                        model: str, dim: int, rows) -> None:
    # the tsvector weighs the title and headings above the body; the BM25 postings and each
    # chunk's length are derived from it, so both sides stem with the same configuration
    await conn.executemany(
        "INSERT INTO chunks (tenant_id, chatbot_id, document_id, position, title, url, heading_path, text, "
        "tokens, embedding_model, embedding_dim, embedding, tsv) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "$10, $11, $12, setweight(to_tsvector($13::regconfig, coalesce($5::text, '') || ' ' || "
        "array_to_string($7::text[], ' ')), 'A') || to_tsvector($13::regconfig, $8))",
        [(tenant_id, chatbot_id, document_id, position, title, url, heading_path, text, tokens, model, dim,
          embedding, ts_config) for position, title, url, heading_path, text, tokens, embedding in rows])
    await conn.execute(
        "UPDATE chunks SET lexemes = (SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0) "
        "FROM unnest(chunks.tsv) u) WHERE document_id = $1", document_id)
    await conn.execute(
        "INSERT INTO chunk_terms (chatbot_id, term, chunk_id, tf, lexemes) "
        "SELECT c.chatbot_id, u.lexeme, c.id, (SELECT count(*) FILTER (WHERE w <> 'A') "
        f"+ {TITLE_TF} * count(*) FILTER (WHERE w = 'A') FROM unnest(u.weights) w), c.lexemes "
        "FROM chunks c, unnest(c.tsv) u WHERE c.document_id = $1", document_id)


async def delete_chunks_of_other_models(conn: asyncpg.Connection, document_id: uuid.UUID, model: str) -> None:
    await conn.execute("DELETE FROM chunks WHERE document_id = $1 AND embedding_model <> $2", document_id, model)


async def chunk_count(conn: asyncpg.Connection, chatbot_id: uuid.UUID, model: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM chunks WHERE chatbot_id = $1 AND embedding_model = $2",
                               chatbot_id, model)


_RESULT_COLUMNS = "c.id, c.document_id, c.title, c.url, c.heading_path, c.text"
# BM25's parameters (Robertson & Zaragoza; Lucene's defaults), tuned on the labelled set
BM25_K1 = 1.2
BM25_B = 0.75
# a question longer than this many distinct words is cut to its first ones
MAX_QUERY_TERMS = 64


def vector_search_sql(dim: int, *, exact: bool) -> str:
    """Nearest chunks of one chatbot. ``exact`` orders by an expression the HNSW index does not
    match, so Postgres reads the chatbot's rows and sorts them exactly: the right plan for a
    small knowledge base, where an approximate scan of a graph shared with other chatbots
    would have to skip many rows that fail the filter."""
    dim = int(dim)
    distance = f"(c.embedding::vector({dim}) <=> $2::vector({dim}))"
    order = f"{distance} + 0" if exact else distance
    return (f"SELECT {_RESULT_COLUMNS}, {distance} AS distance FROM chunks c "
            f"WHERE c.chatbot_id = $1 AND c.embedding_model = $3 AND c.embedding_dim = {dim} "
            f"ORDER BY {order} LIMIT $4")


def lexical_search_sql(dim: int) -> str:
    """BM25 over the chatbot's postings of the query's lexemes (stemmed with the knowledge
    base's configuration). Document frequencies are counted from the same postings, so they
    are exact and need no bookkeeping; N and the average length come from ``lexical_stats``.
    ``query_idf`` is the sum of the IDFs of every query word, found or not: the score a chunk
    matching each word once at average length would get, so ``bm25 / query_idf`` says how
    much of the question a chunk covers, comparable across questions.

    $1 chatbot, $2 model, $3 limit, $4 regconfig, $5 query text, $6 N, $7 average length."""
    dim = int(dim)
    idf = "ln(1 + ($6 - {df} + 0.5) / ({df} + 0.5))"
    return (
        "WITH q AS (SELECT array(SELECT DISTINCT u.lexeme FROM unnest(to_tsvector($4::regconfig, $5)) u "
        f"LIMIT {MAX_QUERY_TERMS}) AS terms), "
        "p AS MATERIALIZED (SELECT t.term, t.chunk_id, t.tf, t.lexemes FROM chunk_terms t, q "
        "WHERE t.chatbot_id = $1 AND t.term = ANY(q.terms)), "
        f"df AS (SELECT term, count(*) AS df, {idf.format(df='count(*)')} AS idf FROM p GROUP BY term), "
        f"qi AS (SELECT coalesce(sum({idf.format(df='coalesce(df.df, 0)')}), 0) AS query_idf "
        "FROM q, unnest(q.terms) term LEFT JOIN df USING (term)), "
        "best AS (SELECT p.chunk_id, "
        f"sum(df.idf * p.tf * ({BM25_K1} + 1) / (p.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * p.lexemes / $7))) "
        "AS bm25 FROM p JOIN df USING (term) GROUP BY p.chunk_id ORDER BY bm25 DESC, p.chunk_id LIMIT $3) "
        f"SELECT {_RESULT_COLUMNS}, c.embedding, b.bm25, qi.query_idf FROM best b JOIN chunks c ON c.id = b.chunk_id, qi "
        f"WHERE c.embedding_model = $2 AND c.embedding_dim = {dim} ORDER BY b.bm25 DESC, c.id")


async def vector_candidates(conn: asyncpg.Connection, *, chatbot_id: uuid.UUID, model: str, dim: int,
                            query_vector: np.ndarray, limit: int, exact: bool,
                            ef_search: int) -> list[asyncpg.Record]:
    async with conn.transaction(readonly=True):
        if not exact:
            # relaxed iterative scan: HNSW keeps scanning until ``limit`` rows pass the chatbot
            # filter (pgvector >= 0.8); sorting is disabled so the planner takes the index
            await conn.execute(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', $1, true), set_config('hnsw.max_scan_tuples', '50000', true), "
                "set_config('enable_sort', 'off', true)", str(ef_search))
        return list(await conn.fetch(vector_search_sql(dim, exact=exact), chatbot_id, query_vector, model, limit))


async def lexical_stats(conn: asyncpg.Connection, chatbot_id: uuid.UUID) -> tuple[int, float]:
    """(chunks, average length in lexemes) of one chatbot: BM25's N and avgdl."""
    row = await conn.fetchrow("SELECT count(*) AS n, coalesce(avg(lexemes), 0) AS avgdl FROM chunks "
                              "WHERE chatbot_id = $1", chatbot_id)
    return int(row["n"]), float(row["avgdl"])


async def lexical_candidates(conn: asyncpg.Connection, *, chatbot_id: uuid.UUID, model: str, dim: int,
                             query_text: str, ts_config: str, limit: int, chunks: int, avgdl: float,
                             timeout_ms: int = 0) -> list[asyncpg.Record]:
    """Empty when the time box runs out: the vector side then answers on its own."""
    async with conn.transaction(readonly=True):
        if timeout_ms:
            await conn.execute("SELECT set_config('statement_timeout', $1, true)", str(int(timeout_ms)))
        try:
            return list(await conn.fetch(lexical_search_sql(dim), chatbot_id, model, limit, ts_config,
                                         query_text, float(max(chunks, 1)), max(avgdl, 1.0)))
        except asyncpg.QueryCanceledError:
            return []


# --- crawls --------------------------------------------------------------------------------------

async def insert_crawl(conn: asyncpg.Connection, *, crawl_id: uuid.UUID, tenant_id: uuid.UUID,
                       chatbot_id: uuid.UUID, start_url: str, options: dict) -> asyncpg.Record:
    return await conn.fetchrow("INSERT INTO crawls (id, tenant_id, chatbot_id, start_url, options) "
                               "VALUES ($1, $2, $3, $4, $5) RETURNING *",
                               crawl_id, tenant_id, chatbot_id, start_url, options)


async def update_crawl(conn: asyncpg.Connection, crawl_id: uuid.UUID, *, seen: int, queued: int, skipped: int,
                       status: str | None = None, reason: str | None = None) -> None:
    await conn.execute(
        "UPDATE crawls SET pages_seen = $2, pages_queued = $3, pages_skipped = $4, status = coalesce($5, status), "
        "heartbeat_at = now(), "
        "reason = coalesce($6, reason), finished_at = CASE WHEN $5 IS NULL THEN finished_at ELSE now() END "
        "WHERE id = $1", crawl_id, seen, queued, skipped, status, reason)


async def get_crawl(conn: asyncpg.Connection, chatbot_id: uuid.UUID, crawl_id: uuid.UUID):
    return await conn.fetchrow("SELECT * FROM crawls WHERE id = $1 AND chatbot_id = $2", crawl_id, chatbot_id)


async def list_crawls(conn: asyncpg.Connection, chatbot_id: uuid.UUID, limit: int = 50):
    return await conn.fetch("SELECT * FROM crawls WHERE chatbot_id = $1 ORDER BY created_at DESC LIMIT $2",
                            chatbot_id, limit)


async def lock_tenant(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> None:
    """Serialise a tenant's document inserts and crawl starts until the transaction ends, so
    counting and inserting are one step (concurrent uploads cannot both take the last place)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('documents:' || $1::uuid::text, 0))", tenant_id)


async def count_tenant_documents(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> int:
    """Every document the tenant has, in every chatbot: what its plan's max_documents counts."""
    return await conn.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant_id)


async def count_running_crawls(conn: asyncpg.Connection, tenant_id: uuid.UUID, *, stale_after_s: float) -> int:
    """Crawls of the tenant still running; one whose heartbeat stopped (its process died)
    no longer counts."""
    return await conn.fetchval(
        "SELECT count(*) FROM crawls WHERE tenant_id = $1 AND status = 'running' "
        "AND heartbeat_at > now() - make_interval(secs => $2)", tenant_id, stale_after_s)


# --- erasure (chatbot or tenant deleted) --------------------------------------------------------

async def delete_chatbot(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID) -> list[uuid.UUID]:
    """A deleted chatbot's knowledge: documents (their raw bytes with them), chunks, terms,
    crawls and the knowledge base. Returns the ids of its crawls (running ones are stopped)."""
    crawl_ids = [r["id"] for r in await conn.fetch(
        "DELETE FROM crawls WHERE tenant_id = $1 AND chatbot_id = $2 RETURNING id", tenant_id, chatbot_id)]
    await conn.execute("DELETE FROM chunk_terms WHERE chatbot_id = $1 AND chunk_id IN "
                       "(SELECT id FROM chunks WHERE tenant_id = $2 AND chatbot_id = $1)", chatbot_id, tenant_id)
    await conn.execute("DELETE FROM chunks WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM documents WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    await conn.execute("DELETE FROM knowledge_bases WHERE tenant_id = $1 AND chatbot_id = $2", tenant_id, chatbot_id)
    return crawl_ids


async def tenant_chatbots(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT chatbot_id FROM knowledge_bases WHERE tenant_id = $1 UNION "
        "SELECT chatbot_id FROM documents WHERE tenant_id = $1 UNION "
        "SELECT chatbot_id FROM crawls WHERE tenant_id = $1", tenant_id)
    return [r["chatbot_id"] for r in rows]


async def pgvector_version(pool: asyncpg.Pool) -> str | None:
    return await pool.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
