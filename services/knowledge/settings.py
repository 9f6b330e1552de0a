from pydantic import Field

from common.settings import NetworkList, settings_for


class Settings(settings_for("knowledge")):
    # raw uploads are kept in Postgres (bytea) so a re-sync or re-embedding needs no file store
    max_upload_bytes: int = Field(20 * 1024 ** 2, validation_alias="KNOWLEDGE_MAX_UPLOAD_BYTES")
    # every fetched URL (single page, crawl page, sitemap, robots.txt)
    fetch_max_bytes: int = Field(10 * 1024 ** 2, validation_alias="KNOWLEDGE_FETCH_MAX_BYTES")
    fetch_timeout_s: float = Field(15.0, validation_alias="KNOWLEDGE_FETCH_TIMEOUT")
    fetch_max_redirects: int = Field(5, validation_alias="KNOWLEDGE_FETCH_MAX_REDIRECTS")
    fetch_user_agent: str = Field("avatarchat-knowledge/0.1 (+https://avatarchat.example/bot)",
                                  validation_alias="KNOWLEDGE_FETCH_USER_AGENT")
    # Private networks that fetches MAY reach. Empty in production: this exists only so tests
    # can crawl a site on 127.0.0.1 (e.g. '["127.0.0.0/8"]').
    fetch_allow_networks: NetworkList = Field(default_factory=list,
                                            validation_alias="KNOWLEDGE_FETCH_ALLOW_NETWORKS")
    crawl_max_pages_limit: int = Field(500, validation_alias="KNOWLEDGE_CRAWL_MAX_PAGES")
    crawl_max_depth_limit: int = Field(5, validation_alias="KNOWLEDGE_CRAWL_MAX_DEPTH")
    # crawls one tenant may run at once (each fetches and parses pages for minutes)
    crawls_per_tenant: int = Field(2, ge=1, validation_alias="KNOWLEDGE_CRAWLS_PER_TENANT")
    # passages per call into the embedder; progress is written after each batch
    embed_batch_size: int = Field(32, validation_alias="KNOWLEDGE_EMBED_BATCH")
    # a document that takes longer than this to parse fails instead of holding the worker
    extract_timeout_s: float = Field(120.0, validation_alias="KNOWLEDGE_EXTRACT_TIMEOUT")
    # address space a parser may take above the idle worker's (RLIMIT_AS), and how many parse
    # at once: a zip bomb or a PDF built to eat memory fails its document, nothing else
    extract_memory_mb: int = Field(768, ge=64, validation_alias="KNOWLEDGE_EXTRACT_MEMORY_MB")
    extract_workers: int = Field(1, ge=1, le=16, validation_alias="KNOWLEDGE_EXTRACT_WORKERS")
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    # HNSW search breadth; iterative scans keep going until enough rows pass the chatbot
    # filter. Measured on real e5 vectors of one chatbot among twelve (5k chunks each):
    # recall@10 against exact search 0.86 at 100, 0.99 at 400.
    hnsw_ef_search: int = Field(400, validation_alias="KNOWLEDGE_HNSW_EF_SEARCH")
    # a knowledge base this small is searched exactly (filter + sort, ~1 us per chunk):
    # perfect recall within the latency budget (10k chunks: p50 ~10 ms); larger ones use the
    # HNSW index with an iterative scan
    exact_search_max_chunks: int = Field(20_000, validation_alias="KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS")
    # the full-text half of a search gives up after this (the vector half still answers)
    text_search_timeout_ms: int = Field(100, validation_alias="KNOWLEDGE_TEXT_SEARCH_TIMEOUT_MS")
    # threads embedding passages (one core each); default: all cores but one
    embed_workers: int | None = Field(None, validation_alias="KNOWLEDGE_EMBED_WORKERS")
    # documents ingested at once: their passages are embedded together
    ingest_concurrency: int = Field(8, ge=1, le=64, validation_alias="KNOWLEDGE_INGEST_CONCURRENCY")
