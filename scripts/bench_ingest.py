"""Ingestion through the running platform, and what it does to visitors and search.

Called by ``make bench`` (scripts/bench.py) while the real supervisord stack runs. Through
the public API, as a tenant would:

1. idle: a visitor's time to first token (a small FAQ chatbot), sequential turns;
2. a corpus of short scientific-style abstracts (~230 words, about 1.5 chunks each, like the
   public corpus the issue measured) is added with ``POST .../knowledge/documents/text``, and
   timed until every document is indexed: chunks/s and tokens/s. Meanwhile a visitor keeps
   chatting and a second client keeps searching, so both are measured under ingestion;
3. idle again: search latency on the now large knowledge base, then the same search while a
   second corpus is ingested into another chatbot.
"""
from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field

import aiohttp

DOCS = int(os.environ.get("BENCH_INGEST_DOCS", "6500"))
SECOND_DOCS = int(os.environ.get("BENCH_INGEST_SECOND_DOCS", "1500"))
POST_CONCURRENCY = 8

FAQ = """# Opening hours
The shop is open Monday to Friday from 9:00 to 18:00 and on Saturdays from 10:00 to 16:00.

# Repairs
We repair e-bikes in our workshop. A standard repair takes two to three working days.

# Rentals
Cargo bikes can be rented for 45 euros a day, including a helmet and a lock.
"""
QUESTIONS = ["When are you open on Saturday?", "How long does an e-bike repair take?",
             "How much is a cargo bike per day?"]

_SUBJECTS = ["mitochondrial fission", "T-cell exhaustion", "insulin resistance", "gut microbiota diversity",
             "amyloid-beta clearance", "tumour angiogenesis", "bone mineral density", "synaptic plasticity",
             "hepatic steatosis", "antibiotic tolerance", "circadian gene expression", "endothelial dysfunction",
             "macrophage polarisation", "retinal degeneration", "muscle protein synthesis", "viral latency"]
_AGENTS = ["metformin", "rapamycin", "vitamin D supplementation", "interleukin-6 blockade", "a high-fat diet",
           "aerobic exercise", "CRISPR knockout of TP53", "statin therapy", "intermittent fasting",
           "PD-1 inhibition", "omega-3 fatty acids", "low-dose aspirin", "a ketogenic diet", "sleep restriction"]
_MODELS = ["in C57BL/6 mice", "in a cohort of 1,204 adults", "in human iPSC-derived neurons", "in zebrafish larvae",
           "in a randomised controlled trial of 312 patients", "in organoid cultures", "in elderly women",
           "in primary hepatocytes", "across 14 European centres", "in a rat model of stroke"]
_METHODS = ["single-cell RNA sequencing", "mass spectrometry", "longitudinal MRI", "flow cytometry",
            "a genome-wide association study", "CRISPR screening", "metabolomic profiling",
            "confocal microscopy", "a Mendelian randomisation analysis", "ChIP-seq"]
_SENTENCES = [
    "We investigated whether {agent} alters {subject} {model}.",
    "Using {method}, we measured changes in {subject} over {n} weeks.",
    "{agent_c} reduced markers of {subject} by {pct} percent compared with controls (p < 0.0{p}).",
    "The effect was independent of age, sex and body mass index.",
    "These changes were accompanied by increased expression of genes involved in {subject2}.",
    "No significant differences were observed in {subject2} {model2}.",
    "Mechanistically, the response required signalling through the mTOR pathway.",
    "Our findings suggest that {subject} is a modifiable target in {model2}.",
    "Follow-up analyses with {method2} confirmed the association in an independent sample.",
    "Adverse events were rare and comparable between groups.",
    "Together, these data identify a link between {agent} and {subject2}.",
    "Further studies are needed to establish causality and long-term safety.",
]


def abstracts(n: int, seed: int = 5) -> list[tuple[str, str]]:
    """``n`` (title, text) pseudo-abstracts of about 230 words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        subject, subject2 = rng.sample(_SUBJECTS, 2)
        agent = rng.choice(_AGENTS)
        fill = dict(agent=agent, agent_c=agent[0].upper() + agent[1:], subject=subject, subject2=subject2,
                    model=rng.choice(_MODELS), model2=rng.choice(_MODELS), method=rng.choice(_METHODS),
                    method2=rng.choice(_METHODS), n=rng.randint(4, 52), pct=rng.randint(8, 61), p=rng.randint(1, 5))
        sentences = []
        while sum(len(s.split()) for s in sentences) < 230:
            sentences.append(rng.choice(_SENTENCES).format(**fill))
        out.append((f"Effects of {agent} on {subject} {fill['model']}", " ".join(sentences)))
    return out


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass
class Samples:
    ttft_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)
    errors: int = 0


class Tenant:
    def __init__(self, http: aiohttp.ClientSession, gateway: str, key: str):
        self.http, self.gateway = http, gateway
        self.auth = {"Authorization": f"Bearer {key}"}

    async def chatbot(self, name: str) -> dict:
        async with self.http.post(f"{self.gateway}/api/v1/chatbots", headers=self.auth, json={"name": name}) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()

    def knowledge(self, chatbot_id: str) -> str:
        return f"{self.gateway}/api/v1/chatbots/{chatbot_id}/knowledge"

    async def add_text(self, chatbot_id: str, title: str, text: str, fmt: str = "text") -> None:
        for _ in range(20):
            async with self.http.post(self.knowledge(chatbot_id) + "/documents/text", headers=self.auth,
                                      json={"title": title, "text": text, "format": fmt}) as resp:
                if resp.status == 202:
                    return
                if resp.status not in (429, 503):
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")
            await asyncio.sleep(1)
        raise RuntimeError("could not add a document")

    async def stats(self, chatbot_id: str) -> dict:
        async with self.http.get(self.knowledge(chatbot_id) + "/stats", headers=self.auth) as resp:
            return await resp.json()

    async def search(self, chatbot_id: str, query: str, top_k: int = 5) -> float:
        started = time.perf_counter()
        async with self.http.post(self.knowledge(chatbot_id) + "/search", headers=self.auth,
                                  json={"query": query, "top_k": top_k}) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"search answered {resp.status}")
        return (time.perf_counter() - started) * 1000

    async def ingest(self, chatbot_id: str, corpus: list[tuple[str, str]]) -> dict:
        """Add every document, wait until all are indexed; chunks/s and tokens/s from the first
        POST to the last document indexed."""
        started = time.perf_counter()
        queue = list(corpus)

        async def poster() -> None:
            while queue:
                title, text = queue.pop()
                await self.add_text(chatbot_id, title, text)

        await asyncio.gather(*(poster() for _ in range(POST_CONCURRENCY)))
        posted_s = time.perf_counter() - started
        while True:
            stats = await self.stats(chatbot_id)
            if stats["indexed"] + stats["failed"] >= len(corpus):
                break
            await asyncio.sleep(1)
        seconds = time.perf_counter() - started
        return {"documents": len(corpus), "failed": stats["failed"], "chunks": stats["chunks"],
                "tokens": stats["tokens"], "seconds": seconds, "posted_s": posted_s,
                "chunks_per_s": stats["chunks"] / seconds, "tokens_per_s": stats["tokens"] / seconds}


async def visitor_turns(http: aiohttp.ClientSession, gateway: str, embed_id: str, samples: Samples,
                        stop: asyncio.Event, pause_s: float = 0.2) -> None:
    """One visitor asking the FAQ bot, one turn after another, until ``stop``."""
    from scripts.bench import sse_events

    async with http.post(f"{gateway}/api/widget/v1/{embed_id}/conversations") as resp:
        conv = await resp.json()
    url = f"{gateway}/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}"
    headers = {"Authorization": f"Bearer {conv['visitor_token']}"}
    n = 0
    async with http.get(url + "/stream", params={"token": conv["visitor_token"]},
                        timeout=aiohttp.ClientTimeout(total=None)) as stream:
        events = sse_events(stream)
        while not stop.is_set():
            n += 1
            posted = time.perf_counter()
            async with http.post(url + "/messages", headers=headers,
                                 json={"text": QUESTIONS[n % len(QUESTIONS)], "client_message_id": f"b{n}"}) as resp:
                if resp.status != 202:
                    samples.errors += 1
                    await asyncio.sleep(pause_s)
                    continue
            first = None
            async for name, _data in events:
                if name == "message.delta" and first is None:
                    first = time.perf_counter()
                    samples.ttft_ms.append((first - posted) * 1000)
                if name in ("message.end", "error"):
                    samples.errors += name == "error"
                    break
            await asyncio.sleep(pause_s)


async def searcher(tenant: Tenant, chatbot_id: str, samples: Samples, stop: asyncio.Event,
                   pause_s: float = 0.1) -> None:
    rng = random.Random(3)
    while not stop.is_set():
        query = f"effect of {rng.choice(_AGENTS)} on {rng.choice(_SUBJECTS)}"
        try:
            samples.search_ms.append(await tenant.search(chatbot_id, query))
        except (RuntimeError, aiohttp.ClientError):
            samples.errors += 1
        await asyncio.sleep(pause_s)


async def during(work, *observers):
    """Run ``work`` while each observer runs; stop them when it ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(o(stop)) for o in observers]
    try:
        result = await work
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return result


async def measure(http: aiohttp.ClientSession, gateway: str, admin: dict) -> dict:
    async with http.post(f"{gateway}/api/v1/admin/tenants", headers=admin,
                         json={"name": "bench-ingest", "limits": {"max_documents": 1_000_000}}) as resp:
        key = (await resp.json())["api_key"]["key"]
    tenant = Tenant(http, gateway, key)
    faq = await tenant.chatbot("bench-faq")
    await tenant.add_text(faq["id"], "Northwind FAQ", FAQ, fmt="markdown")
    while (await tenant.stats(faq["id"]))["indexed"] < 1:
        await asyncio.sleep(0.2)
    big, other = await tenant.chatbot("bench-abstracts"), await tenant.chatbot("bench-abstracts-2")
    out: dict = {}

    idle = Samples()
    await during(asyncio.sleep(20), lambda stop: visitor_turns(http, gateway, faq["embed_id"], idle, stop))
    out["ttft_idle"] = idle

    busy = Samples()
    out["ingest"] = await during(tenant.ingest(big["id"], abstracts(DOCS)),
                                 lambda stop: visitor_turns(http, gateway, faq["embed_id"], busy, stop),
                                 lambda stop: searcher(tenant, big["id"], Samples(), stop))
    out["ttft_busy"] = busy

    quiet = Samples()
    await during(asyncio.sleep(20), lambda stop: searcher(tenant, big["id"], quiet, stop))
    out["search_idle"] = quiet
    loaded = Samples()
    out["ingest_second"] = await during(tenant.ingest(other["id"], abstracts(SECOND_DOCS, seed=9)),
                                        lambda stop: searcher(tenant, big["id"], loaded, stop))
    out["search_busy"] = loaded
    out["big_chunks"] = (await tenant.stats(big["id"]))["chunks"]
    return out


def report(m: dict) -> str:
    ingest, second = m["ingest"], m["ingest_second"]
    idle, busy = m["ttft_idle"], m["ttft_busy"]
    lines = [
        "## Ingestion through the platform", "",
        f"{ingest['documents']:,} scientific-style abstracts (~230 words, about 1.5 chunks each) added through "
        "`POST /api/v1/chatbots/{id}/knowledge/documents/text` (8 clients), timed from the first POST to the "
        "last document indexed, on the running stack (all six services, Postgres, RabbitMQ on these 2 cores). "
        "Meanwhile one visitor chats with another chatbot and a client searches the growing knowledge base.", "",
        "| corpus | documents | chunks | tokens | seconds | chunks/s | tokens/s | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| first | {ingest['documents']:,} | {ingest['chunks']:,} | {ingest['tokens']:,} | {ingest['seconds']:.0f} | "
        f"{ingest['chunks_per_s']:.1f} | {ingest['tokens_per_s']:.0f} | {ingest['failed']} |",
        f"| second (while searching) | {second['documents']:,} | {second['chunks']:,} | {second['tokens']:,} | "
        f"{second['seconds']:.0f} | {second['chunks_per_s']:.1f} | {second['tokens_per_s']:.0f} | {second['failed']} |",
        "", "Before (issue 11): 2.6 chunks/s (8,669 chunks, 1.39M tokens in 55 minutes, about 420 tokens/s).", "",
        "A visitor's time to first token (POST to first `message.delta`, ms), the `local` provider:", "",
        "| | turns | p50 | p95 | errors |", "|---|---:|---:|---:|---:|",
        f"| idle | {len(idle.ttft_ms)} | {pct(idle.ttft_ms, 50):.1f} | {pct(idle.ttft_ms, 95):.1f} | {idle.errors} |",
        f"| during ingestion | {len(busy.ttft_ms)} | {pct(busy.ttft_ms, 50):.1f} | {pct(busy.ttft_ms, 95):.1f} | "
        f"{busy.errors} |",
        f"| ratio p50 | | {pct(busy.ttft_ms, 50) / pct(idle.ttft_ms, 50):.2f} | | |", "",
        "Before: p50 55 ms idle, 77 ms during a 400-document ingestion (ratio 1.40). Goal: within 1.5x.", "",
        f"Search through the tenant API on the {m['big_chunks']:,}-chunk knowledge base (top 5, ms):", "",
        "| | searches | p50 | p95 | errors |", "|---|---:|---:|---:|---:|",
        f"| idle | {len(m['search_idle'].search_ms)} | {pct(m['search_idle'].search_ms, 50):.1f} | "
        f"{pct(m['search_idle'].search_ms, 95):.1f} | {m['search_idle'].errors} |",
        f"| while another chatbot ingests | {len(m['search_busy'].search_ms)} | "
        f"{pct(m['search_busy'].search_ms, 50):.1f} | {pct(m['search_busy'].search_ms, 95):.1f} | "
        f"{m['search_busy'].errors} |", "",
        "Before: p50 74 ms, p95 118 ms at top_k=50 on 8.7k chunks (idle). Goal: p95 ≤ 50 ms at 10k chunks "
        "under ingestion.",
    ]
    return "\n".join(lines)
