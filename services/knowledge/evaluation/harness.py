"""The labelled retrieval set, the metrics, and a knowledge base built from it at scale.

``retrieval_set.json`` holds imaginary businesses, their help-centre passages (with near
twins that answer a different question), and visitor questions labelled with the passages
that answer them: single questions, follow-ups that only make sense with the conversation
before them, and questions in other languages than the passages.

``build`` loads every business as its own chatbot, each padded with the same generated
distractor chunks (a product catalogue and service notes of unrelated shops), so each
search runs on a knowledge base of realistic size. The scripts/bench_knowledge.py report
and the ranking test (tests/integration/knowledge/test_ranking_at_scale.py) share it.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Iterable

import numpy as np

SET_PATH = Path(__file__).parent / "retrieval_set.json"
SLICES = ("single", "followup", "multilingual")


@dataclass
class Turn:
    role: str
    text: str


@dataclass
class Query:
    id: str
    business: str
    kind: str
    language: str
    history: list[Turn]
    question: str
    relevant: list[str]

    def context(self) -> list[str]:
        """What the ai service sends knowledge along with a follow-up (common.events.search_context)."""
        from common.events import HistoryMessage, search_context

        return search_context([HistoryMessage(role=t.role, text=t.text) for t in self.history])


@dataclass
class EvalSet:
    businesses: dict[str, dict]
    passages: dict[str, dict]
    queries: list[Query]

    def passages_of(self, business: str) -> list[str]:
        return [pid for pid, p in self.passages.items() if p["business"] == business]


def load(path: Path = SET_PATH) -> EvalSet:
    data = json.loads(path.read_text())
    queries = [Query(id=q["id"], business=q["business"], kind=q["kind"], language=q.get("language", "en"),
                     history=[Turn(t["role"], t["text"]) for t in q.get("history", [])],
                     question=q["question"], relevant=list(q["relevant"]))
               for q in data["queries"]]
    return EvalSet(businesses=data["businesses"], passages=data["passages"], queries=queries)


# --- metrics ---------------------------------------------------------------------------------

@dataclass
class Scores:
    recall_1: float = 0.0
    recall_5: float = 0.0
    mrr: float = 0.0
    ndcg_10: float = 0.0
    n: int = 0

    def row(self) -> str:
        return f"{self.recall_1:.3f} | {self.recall_5:.3f} | {self.mrr:.3f} | {self.ndcg_10:.3f}"


def judge(ranked: list[str], relevant: Iterable[str]) -> Scores:
    """One query's scores from the passage ids in the order returned (duplicates count once)."""
    relevant = set(relevant)
    seen: list[str] = []
    for pid in ranked:
        if pid not in seen:
            seen.append(pid)
    hits = [pid in relevant for pid in seen]
    first = next((i for i, hit in enumerate(hits) if hit), None)
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits[:10]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), 10)))
    return Scores(recall_1=float(any(hits[:1])), recall_5=float(any(hits[:5])),
                  mrr=0.0 if first is None else 1 / (first + 1), ndcg_10=dcg / ideal if ideal else 0.0, n=1)


def average(scores: list[Scores]) -> Scores:
    if not scores:
        return Scores()
    n = len(scores)
    return Scores(recall_1=sum(s.recall_1 for s in scores) / n, recall_5=sum(s.recall_5 for s in scores) / n,
                  mrr=sum(s.mrr for s in scores) / n, ndcg_10=sum(s.ndcg_10 for s in scores) / n, n=n)


def by_slice(results: list[tuple[Query, Scores]]) -> dict[str, Scores]:
    out = {name: average([s for q, s in results if q.kind == name]) for name in SLICES}
    out["all"] = average([s for _, s in results])
    return out


# --- distractors -----------------------------------------------------------------------------

_BRANDS = ["Norvik", "Alteza", "Kobalt", "Freyja", "Solenne", "Marzo", "Tavira", "Quillon", "Brisa", "Ostrava",
           "Helmi", "Corvo", "Linden", "Sarek", "Vela", "Tornio", "Adria", "Kestrel", "Pavia", "Runa"]
_GOODS = ["garden hose", "desk lamp", "camping stove", "yoga mat", "coffee grinder", "rain jacket", "wall clock",
          "picture frame", "kettle", "backpack", "sofa cushion", "watering can", "tool box", "bath towel",
          "cutting board", "hiking boot", "wool blanket", "ceiling fan", "shower head", "bird feeder",
          "paint roller", "door mat", "spice rack", "laundry basket", "tent peg set", "thermos flask",
          "ironing board", "plant pot", "kitchen scale", "step ladder"]
_TRAITS = ["lightweight", "water-resistant", "foldable", "hand-made", "recycled", "compact", "heavy-duty",
           "stackable", "dishwasher-safe", "frost-proof", "adjustable", "ergonomic", "washable", "solid oak",
           "stainless steel", "bamboo", "ceramic", "cast iron", "linen", "silicone"]
_COLOURS = ["sage green", "charcoal", "sand", "navy", "terracotta", "ivory", "mustard", "slate", "plum", "teal"]
_NOTES = [
    "Customers often pair it with the matching {good2} from the same range.",
    "The {trait} finish keeps its colour for years, even in direct sunlight.",
    "Assembly takes about {n} minutes with the included key.",
    "It was redesigned in {year} after feedback from our workshop team.",
    "A spare parts kit is sold separately under article number {code}-S.",
    "The packaging is made from {pct} percent recycled cardboard.",
    "Care: wipe with a damp cloth and avoid abrasive cleaners.",
    "It is produced in a family workshop near {place}.",
    "The {good} fits in most standard cupboards and shelves.",
    "Several colours are limited editions and may sell out quickly.",
]
_PLACES = ["Tampere", "Braga", "Ghent", "Lyon", "Kraków", "Bergen", "Trieste", "Aarhus", "Sevilla", "Graz"]


def distractors(n: int, seed: int = 11) -> list[tuple[str, str]]:
    """``n`` (title, text) chunks of an unrelated home-goods catalogue: realistic words and
    sentences for both sides of search to wade through, answering none of the set's questions."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        brand, good, good2 = rng.choice(_BRANDS), rng.choice(_GOODS), rng.choice(_GOODS)
        code = f"{rng.choice('BCDFGHJKLMNPQRSTVWZ')}{rng.choice('BCDFGHJKLMNPQRSTVWZ')}-{rng.randint(100, 999)}"
        traits = rng.sample(_TRAITS, 2)
        title = f"{brand} {good} {code}"
        body = (f"The {brand} {good} {code} is a {traits[0]}, {traits[1]} {good} in {rng.choice(_COLOURS)}. "
                f"It weighs {rng.randint(2, 95) / 10:.1f} kg and measures {rng.randint(10, 120)} by "
                f"{rng.randint(10, 90)} cm. ")
        for note in rng.sample(_NOTES, 2):
            body += note.format(good=good, good2=good2, trait=traits[0], n=rng.randint(5, 45),
                                year=rng.randint(2015, 2026), code=code, pct=rng.randint(40, 100),
                                place=rng.choice(_PLACES)) + " "
        out.append((title, body.strip()))
    return out


# --- embeddings, cached ----------------------------------------------------------------------

class VectorCache:
    """Passage vectors kept on disk by (model, text), so repeated runs embed only new text."""

    def __init__(self, path: Path, model: str):
        self.path = path
        self.model = model
        self._vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path) as data:
                self._vectors = {k: data[k] for k in data.files}

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()[:32]

    async def embed(self, texts: list[str], embed: Callable[[list[str]], Awaitable[np.ndarray]],
                    batch: int = 256) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if self._key(t) not in self._vectors))
        for start in range(0, len(missing), batch):
            part = missing[start:start + batch]
            for text, vector in zip(part, await embed(part)):
                self._vectors[self._key(text)] = np.asarray(vector, dtype=np.float32)
        if missing:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, **self._vectors)
            tmp.replace(self.path)
        return np.stack([self._vectors[self._key(t)] for t in texts]) if texts else np.zeros((0, 0), np.float32)


# --- the knowledge bases ---------------------------------------------------------------------

@dataclass
class Built:
    tenant_id: uuid.UUID
    chatbots: dict[str, uuid.UUID] = field(default_factory=dict)      # business -> chatbot
    passage_of_chunk: dict[int, str] = field(default_factory=dict)    # chunk id -> passage id
    chunks_per_chatbot: int = 0


async def build(pool, embedder, evalset: EvalSet, *, distractor_count: int, cache: VectorCache,
                ts_config: str = "english") -> Built:
    """One chatbot per business: its passages (one chunk each, titled) and the distractors,
    stored through the service's own repository functions with the real embedder's vectors."""
    from services.knowledge import repository as repo
    from services.knowledge.embeddings import passage_input

    built = Built(tenant_id=uuid.uuid4())
    noise = distractors(distractor_count)
    noise_vectors = await cache.embed([passage_input(title, [], text) for title, text in noise],
                                      embedder.embed_passages)
    for business in evalset.businesses:
        chatbot_id = uuid.uuid4()
        built.chatbots[business] = chatbot_id
        pids = evalset.passages_of(business)
        texts = [passage_input(evalset.passages[p]["title"], [], evalset.passages[p]["text"]) for p in pids]
        vectors = await cache.embed(texts, embedder.embed_passages)
        async with pool.acquire() as conn, conn.transaction():
            await repo.ensure_knowledge_base(conn, built.tenant_id, chatbot_id)
            await conn.execute("UPDATE knowledge_bases SET text_search_config = $2::regconfig WHERE chatbot_id = $1",
                               chatbot_id, ts_config)
            rows = [(0, evalset.passages[p]["title"], None, [], evalset.passages[p]["text"], 60, v)
                    for p, v in zip(pids, vectors)]
            document_id = await _document(conn, repo, built.tenant_id, chatbot_id, "help centre", len(rows))
            await repo.insert_chunks(conn, built.tenant_id, chatbot_id, document_id, ts_config=ts_config,
                                     model=embedder.model, dim=embedder.dim, rows=rows)
            for pid, chunk_id in zip(pids, await conn.fetch(
                    "SELECT id FROM chunks WHERE document_id = $1 ORDER BY id", document_id)):
                built.passage_of_chunk[chunk_id["id"]] = pid
            for start in range(0, len(noise), 500):
                part = list(zip(noise[start:start + 500], noise_vectors[start:start + 500]))
                document_id = await _document(conn, repo, built.tenant_id, chatbot_id, f"catalogue {start}",
                                              len(part))
                await repo.insert_chunks(conn, built.tenant_id, chatbot_id, document_id, ts_config=ts_config,
                                         model=embedder.model, dim=embedder.dim,
                                         rows=[(i, title, None, [], text, 40, v)
                                               for i, ((title, text), v) in enumerate(part)])
            await repo.bump_knowledge_version(conn, chatbot_id)
        built.chunks_per_chatbot = max(built.chunks_per_chatbot, len(pids) + len(noise))
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE chunks")
        await conn.execute("ANALYZE chunk_terms")
    return built


async def _document(conn, repo, tenant_id, chatbot_id, title: str, chunks: int) -> uuid.UUID:
    document_id = uuid.uuid4()
    await repo.insert_document(conn, document_id=document_id, tenant_id=tenant_id, chatbot_id=chatbot_id,
                               source="text", title=title, ingest_event_id=uuid.uuid4())
    await repo.mark_indexed(conn, document_id, title=title, content_sha256=secrets.token_hex(16),
                            chunk_count=chunks, token_count=60 * chunks)
    return document_id
