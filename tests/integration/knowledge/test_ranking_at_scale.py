"""Search quality at the size tenants have: every business of the labelled set is a chatbot
whose knowledge base also holds 5,000 catalogue chunks, searched through the service's real
HTTP endpoint. The fused ranking must beat each of its sides alone on every slice (single
questions, follow-ups read in context, questions in other languages).

At this size BM25 finds chunks the vector side did not, which is where search used to
crash (pgvector's codec returning its own Vector class); every search must answer 200.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from common.db import create_pool
from services.knowledge.app import MIGRATIONS, create_app
from services.knowledge.evaluation import harness
from services.knowledge.settings import Settings
from tests.conftest import ROOT, _run, scratch_database

DISTRACTORS = 5_000
CACHE = ROOT / ".data" / "cache" / "eval-vectors.npz"


# on a clean checkout the 5,000 catalogue chunks are embedded first (then cached in .data/cache)
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def ranked_knowledge(embedder):
    """The labelled set loaded at scale into a scratch database (built once for the module)."""
    evalset = harness.load()
    holder: dict = {}

    async def build(url: str) -> None:
        pool = await create_pool(url, vector=True, migrations=MIGRATIONS, max_size=4)
        try:
            cache = harness.VectorCache(CACHE, embedder.model)
            holder["built"] = await harness.build(pool, embedder, evalset, distractor_count=DISTRACTORS,
                                                  cache=cache)
        finally:
            await pool.close()

    with scratch_database("kn_rank") as url:
        _run(build(url))
        yield url, evalset, holder["built"]


async def test_fused_search_beats_each_side_on_every_slice(aiohttp_client, ranked_knowledge, knowledge_vhost,
                                                           embedder):
    url, evalset, built = ranked_knowledge
    assert built.chunks_per_chatbot >= 5_000
    settings = Settings(KNOWLEDGE_DATABASE_URL=url, AMQP_URL=knowledge_vhost, SHUTDOWN_TIMEOUT=5)
    client = await aiohttp_client(create_app(settings, local_embedder=embedder))

    async def run(query: harness.Query, mode: str) -> harness.Scores:
        resp = await client.post("/internal/search", json={
            "tenant_id": str(built.tenant_id), "chatbot_id": str(built.chatbots[query.business]),
            "query": query.question, "context": query.context(), "top_k": 10, "mode": mode})
        body = await resp.json()
        assert resp.status == 200, body
        ranked = [built.passage_of_chunk.get(item["chunk_id"], "catalogue") for item in body["data"]]
        return harness.judge(ranked, query.relevant)

    report = {}
    for mode in ("hybrid", "dense", "lexical"):
        scores = []
        for query in evalset.queries:
            scores.append((query, await run(query, mode)))
        report[mode] = harness.by_slice(scores)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "ranking.json").write_text(json.dumps(
        {mode: {name: vars(s) for name, s in slices.items()} for mode, slices in report.items()}, indent=2))
    for name in harness.SLICES:
        hybrid, dense, lexical = (report[m][name] for m in ("hybrid", "dense", "lexical"))
        assert hybrid.n > 0
        assert hybrid.ndcg_10 > dense.ndcg_10 and hybrid.ndcg_10 > lexical.ndcg_10, (name, report)
        assert hybrid.mrr > dense.mrr and hybrid.mrr > lexical.mrr, (name, report)
