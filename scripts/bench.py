"""`make bench`: measure the running platform and write docs/benchmarks.md.

Starts the real supervisord.conf on the test ports (the test databases and vhost), then:

(a) the platform's overhead on time to first token: the moment the SSE client read its first
    ``message.delta`` minus the moment the provider produced its first token (the ai service
    reports that wall-clock instant in ``message.end``'s timings), p50/p95/p99;
(b) complete chat turns per second at concurrency 1, 10 and 50, with the error count; a turn
    is one visitor message, from POST to ``message.end``, each worker being one visitor with
    an open SSE stream;
(c) the same measured against a baseline: one aiohttp process calling the same provider
    in-process and streaming SSE (scripts/bench_baseline.py). Ours are reported as ratios.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

from scripts import bench_ingest
from scripts.start_app import ROOT, supervisor_env

BIN = Path(sys.executable).parent
LEVELS = (1, 10, 50)
LEVEL_SECONDS = float(os.environ.get("BENCH_LEVEL_SECONDS", "10"))
QUESTION = "Can I return a bike after 30 days?"
BASELINE_PORT = 13999
FAKE_PROVIDER_PORT = 13998
FAKE_PROVIDER = f"http://127.0.0.1:{FAKE_PROVIDER_PORT}"


@dataclass
class Level:
    concurrency: int
    turns: int = 0
    errors: int = 0
    seconds: float = 0.0
    overhead_ms: list[float] = field(default_factory=list)
    visitor_ttft_ms: list[float] = field(default_factory=list)
    turn_ms: list[float] = field(default_factory=list)
    # turns whose provider timings only the tenant may read: (conversation id, reply id, first delta)
    unresolved: list[tuple[str, str, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.turns / self.seconds if self.seconds else 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


async def sse_events(resp: aiohttp.ClientResponse):
    name, data = "message", []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


class Pacer:
    """Open-loop arrivals: hands out start times ``1/rate`` apart, whoever is free takes the next."""

    def __init__(self, rate: float | None):
        self.interval = 1 / rate if rate else 0.0
        self.next_at = time.monotonic()

    def restart(self) -> None:
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        slot = self.next_at
        self.next_at += self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class Platform:
    def __init__(self, http: aiohttp.ClientSession, base: str, embed_id: str, key: str, pacer: Pacer | None = None):
        self.http, self.base, self.embed, self.key = http, base, embed_id, key
        self.pacer = pacer or Pacer(None)

    async def resolve(self, level: Level) -> None:
        """A visitor's stream carries no timings (they are the tenant's): read the instant the
        provider produced its first token from the tenant's transcripts, after the level."""
        firsts: dict[str, float] = {}
        for conversation_id in {c for c, _, _ in level.unresolved}:
            async with self.http.get(f"{self.base}/api/v1/conversations/{conversation_id}",
                                     headers={"Authorization": f"Bearer {self.key}"}) as resp:
                body = await resp.json()
            for m in body.get("messages", []):
                first = (m.get("timings") or {}).get("first_token_at")
                if first:
                    firsts[m["id"]] = first
        for _, reply_id, first_delta in level.unresolved:
            if reply_id in firsts:
                level.overhead_ms.append((first_delta - firsts[reply_id]) * 1000)
        level.unresolved.clear()

    async def visitor(self, level: Level, stop_at: float) -> None:
        async with self.http.post(f"{self.base}/api/widget/v1/{self.embed}/conversations") as resp:
            conv = await resp.json()
        url = f"{self.base}/api/widget/v1/{self.embed}/conversations/{conv['conversation_id']}"
        headers = {"Authorization": f"Bearer {conv['visitor_token']}"}
        async with self.http.get(url + "/stream", params={"token": conv["visitor_token"]},
                                 timeout=aiohttp.ClientTimeout(total=None)) as stream:
            events = sse_events(stream)
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                await self.pacer.wait()
                if time.monotonic() >= stop_at:
                    break
                posted = time.time()
                async with self.http.post(url + "/messages", headers=headers,
                                          json={"text": QUESTION, "client_message_id": f"m{n}"}) as resp:
                    if resp.status != 202:
                        level.errors += 1
                        continue
                first_delta = None
                try:
                    async for name, data in events:
                        if name == "message.delta" and first_delta is None:
                            first_delta = time.time()
                        elif name == "message.end":
                            record(level, posted, first_delta, data, conv["conversation_id"])
                            break
                        elif name == "error":
                            level.errors += 1
                            break
                except Exception:  # noqa: BLE001 - counted, the visitor gives up
                    level.errors += 1
                    return


class Baseline:
    def __init__(self, http: aiohttp.ClientSession, base: str, provider: str = "local", pacer: Pacer | None = None):
        self.http, self.base, self.provider = http, base, provider
        self.pacer = pacer or Pacer(None)

    async def visitor(self, level: Level, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            await self.pacer.wait()
            if time.monotonic() >= stop_at:
                break
            posted = time.time()
            first_delta = None
            try:
                async with self.http.get(f"{self.base}/chat",
                                         params={"text": QUESTION, "provider": self.provider}) as resp:
                    async for name, data in sse_events(resp):
                        if name == "message.delta" and first_delta is None:
                            first_delta = time.time()
                        elif name == "message.end":
                            record(level, posted, first_delta, data)
                            break
            except Exception:  # noqa: BLE001 - counted
                level.errors += 1


def record(level: Level, posted: float, first_delta: float | None, end: dict,
           conversation_id: str | None = None) -> None:
    done = time.time()
    level.turns += 1
    level.turn_ms.append((done - posted) * 1000)
    if first_delta is None:
        return
    level.visitor_ttft_ms.append((first_delta - posted) * 1000)
    first_token_at = (end.get("timings") or {}).get("first_token_at")
    if first_token_at:
        level.overhead_ms.append((first_delta - first_token_at) * 1000)
    elif conversation_id:
        level.unresolved.append((conversation_id, end["reply_id"], first_delta))


async def run_level(target, concurrency: int) -> Level:
    level = Level(concurrency)
    target.pacer.restart()
    started = time.monotonic()
    stop_at = started + LEVEL_SECONDS
    await asyncio.gather(*(target.visitor(level, stop_at) for _ in range(concurrency)))
    level.seconds = time.monotonic() - started
    if level.unresolved:
        await target.resolve(level)
    return level


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


async def measure():
    gateway = f"http://127.0.0.1:{os.environ['GATEWAY_PORT']}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        admin = {"Authorization": f"Bearer {os.environ['ADMIN_API_KEY']}"}
        async with http.post(f"{gateway}/api/v1/admin/tenants", json={"name": "bench"}, headers=admin) as resp:
            key = (await resp.json())["api_key"]["key"]
        async with http.post(f"{gateway}/api/v1/chatbots", headers={"Authorization": f"Bearer {key}"}, json={
                "name": "bench", "persona": {"greeting": "Hello from Acme!",
                "fallback_answer": "Sorry, I do not know that yet, please email help@acme.example."}}) as resp:
            embed = (await resp.json())["embed_id"]
        ours = Platform(http, gateway, embed, key)
        base = Baseline(http, f"http://127.0.0.1:{BASELINE_PORT}")
        await run_level(ours, 5)  # warm-up: connections, caches, JIT of the query plans
        await run_level(base, 5)
        ours_levels, base_levels = [], []
        for c in LEVELS:
            ours_levels.append(await run_level(ours, c))
            base_levels.append(await run_level(base, c))
            print(f"concurrency {c}: ours {ours_levels[-1].rate:.1f}/s, baseline {base_levels[-1].rate:.1f}/s",
                  flush=True)
        provider = await measure_provider(http, gateway, admin)
    return ours_levels, base_levels, provider


async def measure_ingest() -> dict:
    gateway = f"http://127.0.0.1:{os.environ['GATEWAY_PORT']}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        return await bench_ingest.measure(http, gateway, {"Authorization": f"Bearer {os.environ['ADMIN_API_KEY']}"})


PROVIDER_RATE = float(os.environ.get("BENCH_PROVIDER_RATE", "50"))
PROVIDER_FIRST_S = 0.1
PROVIDER_VISITORS = 60


async def measure_provider(http: aiohttp.ClientSession, gateway: str, admin: dict) -> tuple[Level, Level]:
    """Issue 6's measurement: a loopback OpenAI-format provider whose first token comes after a
    fixed delay, visitors arriving at PROVIDER_RATE turns per second, ours against the baseline."""
    async with http.post(f"{gateway}/api/v1/admin/tenants", json={"name": "bench-provider"}, headers=admin) as resp:
        key = (await resp.json())["api_key"]["key"]
    auth = {"Authorization": f"Bearer {key}"}
    async with http.put(f"{gateway}/api/v1/provider-keys/openai", headers=auth,
                        json={"api_key": "sk-bench-000000", "base_url": f"{FAKE_PROVIDER}/v1"}) as resp:
        assert resp.status == 200, await resp.text()
    async with http.post(f"{gateway}/api/v1/chatbots", headers=auth, json={
            "name": "bench-provider", "ai": {"provider": "openai", "model": "gpt-4o-mini"}}) as resp:
        embed = (await resp.json())["embed_id"]
    results = []
    for target in (Platform(http, gateway, embed, key, Pacer(PROVIDER_RATE)),
                   Baseline(http, f"http://127.0.0.1:{BASELINE_PORT}", "openai", Pacer(PROVIDER_RATE))):
        await run_level(type(target)(*([http, gateway, embed, key] if isinstance(target, Platform)
                                       else [http, target.base, "openai"])), 3)  # warm-up
        level = await run_level(target, PROVIDER_VISITORS)
        results.append(level)
        print(f"provider at {PROVIDER_RATE:.0f}/s: {type(target).__name__} {level.rate:.1f}/s, "
              f"overhead p50 {pct(level.overhead_ms, 50):.1f} ms", flush=True)
    return results[0], results[1]


def fmt(v: float) -> str:
    return f"{v:.2f}" if v == v else "n/a"


def report(ours: list[Level], base: list[Level], provider: tuple[Level, Level]) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [
        "# Benchmarks", "",
        f"By `make bench` on {os.cpu_count()} cores ({cpu}), everything on this one machine: the six services under "
        "supervisord, the embedded PostgreSQL, RabbitMQ, and the load generator. "
        f"Each level runs {LEVEL_SECONDS:.0f} s; a turn is one visitor message from POST to `message.end` "
        "(the `local` provider), each concurrent visitor keeping its SSE stream open.", "",
        "## (a) Added time to first token", "",
        "SSE client's first `message.delta` minus the provider's first token (ms).", "",
        "| concurrency | ours p50 | p95 | p99 | baseline p50 | p95 | p99 |", "|---|---|---|---|---|---|---|",
    ]
    for o, b in zip(ours, base):
        lines.append(f"| {o.concurrency} | {fmt(pct(o.overhead_ms, 50))} | {fmt(pct(o.overhead_ms, 95))} | "
                     f"{fmt(pct(o.overhead_ms, 99))} | {fmt(pct(b.overhead_ms, 50))} | "
                     f"{fmt(pct(b.overhead_ms, 95))} | {fmt(pct(b.overhead_ms, 99))} |")
    lines += ["", "Time from the visitor's POST to the first `message.delta` (ms), for context:", "",
              "| concurrency | ours p50 | p95 | p99 | baseline p50 | p95 | p99 |", "|---|---|---|---|---|---|---|"]
    for o, b in zip(ours, base):
        lines.append(f"| {o.concurrency} | {fmt(pct(o.visitor_ttft_ms, 50))} | {fmt(pct(o.visitor_ttft_ms, 95))} | "
                     f"{fmt(pct(o.visitor_ttft_ms, 99))} | {fmt(pct(b.visitor_ttft_ms, 50))} | "
                     f"{fmt(pct(b.visitor_ttft_ms, 95))} | {fmt(pct(b.visitor_ttft_ms, 99))} |")
    lines += ["", "## (b) Complete turns per second, and (c) ratio to the baseline", "",
              "| concurrency | ours turns/s | errors | turn p50 ms | turn p95 ms | baseline turns/s | errors "
              "| ours / baseline |", "|---|---|---|---|---|---|---|---|"]
    for o, b in zip(ours, base):
        ratio = o.rate / b.rate if b.rate else float("nan")
        lines.append(f"| {o.concurrency} | {o.rate:.1f} | {o.errors} | {fmt(pct(o.turn_ms, 50))} | "
                     f"{fmt(pct(o.turn_ms, 95))} | {b.rate:.1f} | {b.errors} | {fmt(ratio)} |")
    p_ours, p_base = provider
    lines += ["", f"## Added time to first token with a real-format provider, at {PROVIDER_RATE:.0f} turns/s", "",
              f"A loopback server speaking OpenAI's streaming format sends its first token "
              f"{PROVIDER_FIRST_S * 1000:.0f} ms after the request, then 20 more. Visitors arrive at "
              f"{PROVIDER_RATE:.0f} turns per second (open loop). The added time is the visitor's first "
              "`message.delta` minus the moment the ai service (or the baseline) received the provider's "
              "first token. Goal (issue 6): p50 ≤ 15 ms and p99 ≤ 60 ms.", "",
              "| | turns/s reached | errors | added p50 ms | p95 | p99 | visitor TTFT p50 ms | p95 |",
              "|---|---|---|---|---|---|---|---|"]
    for name, level in (("ours", p_ours), ("baseline", p_base)):
        lines.append(f"| {name} | {level.rate:.1f} | {level.errors} | {fmt(pct(level.overhead_ms, 50))} | "
                     f"{fmt(pct(level.overhead_ms, 95))} | {fmt(pct(level.overhead_ms, 99))} | "
                     f"{fmt(pct(level.visitor_ttft_ms, 50))} | {fmt(pct(level.visitor_ttft_ms, 95))} |")
    lines += ["", "The baseline is one aiohttp process streaming the same provider in-process: no broker, "
              "no database, no durability. The gap is the price of what the platform adds: a durable, "
              "confirmed message before the `202`, the stored turn, the outbox, the cost ledger, "
              "analytics and the avatar — and the work of five more processes on the same two cores.", ""]
    return "\n".join(lines)


# docs/benchmarks.md's sections, in their order; each is replaced as soon as it is measured, so
# a run that dies half-way keeps what it measured (and the older figures of the rest)
SECTIONS = ("platform", "ingest", "knowledge", "analytics")
BENCH_MD = ROOT / "docs" / "benchmarks.md"
MARKER = re.compile(r"^<!-- bench:(\w+) -->$", re.M)


def wanted(section: str) -> bool:
    """BENCH_ONLY=ingest,knowledge runs only those sections; BENCH_SKIP_<NAME>=1 skips one."""
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    return (not only or section in only) and not os.environ.get(f"BENCH_SKIP_{section.upper()}")


def save_section(section: str, text: str) -> None:
    old = BENCH_MD.read_text() if BENCH_MD.exists() else ""
    parts = MARKER.split(old)  # [preamble, name, text, name, text, ...]
    sections = dict(zip(parts[1::2], (t.strip() for t in parts[2::2])))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    heading, _, body = text.strip().partition("\n")
    sections[section] = (f"{heading}\n\n_Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC at commit "
                         f"`{commit}`._\n{body}")
    BENCH_MD.write_text("\n\n".join(f"<!-- bench:{name} -->\n{sections[name]}"
                                      for name in SECTIONS if name in sections) + "\n")
    print(sections[section], flush=True)


def main() -> None:
    run_dir = ROOT / "var" / "bench"
    env = supervisor_env({**os.environ, "LOG_DIR": str(run_dir / "log"), "SUPERVISOR_RUN_DIR": str(run_dir),
                          "LOG_LEVEL": "WARNING",
                          # the load generator is one client on one address sending far more than a
                          # visitor would: rate limits would measure themselves, not the platform
                          "RATE_LIMIT_VISITOR_PER_MINUTE": "100000000", "RATE_LIMIT_IP_PER_MINUTE": "100000000",
                          "RATE_LIMIT_KEY_PER_MINUTE": "100000000",
                          "RATE_LIMIT_CONVERSATIONS_PER_IP_PER_HOUR": "100000000",
                          "RATE_LIMIT_MESSAGES_PER_IP_PER_HOUR": "100000000"})
    ctl = [str(BIN / "supervisorctl"), "-c", str(ROOT / "supervisord.conf")]
    if wanted("platform") or wanted("ingest"):
        subprocess.run([str(BIN / "supervisord"), "-c", str(ROOT / "supervisord.conf")], env=env, check=True)
        fake = subprocess.Popen([sys.executable, "-m", "scripts.bench", "--fake-provider"], cwd=ROOT)
        baseline = subprocess.Popen([sys.executable, "-m", "scripts.bench_baseline", str(BASELINE_PORT),
                                     f"{FAKE_PROVIDER}/v1"], cwd=ROOT)
        try:
            wait_http(f"http://127.0.0.1:{os.environ['GATEWAY_PORT']}/health", 90)
            if wanted("platform"):
                save_section("platform", report(*asyncio.run(measure())))
            if wanted("ingest"):
                print("benchmarking ingestion through the platform...", flush=True)
                save_section("ingest", bench_ingest.report(asyncio.run(measure_ingest())))
        finally:
            fake.terminate()
            baseline.terminate()
            subprocess.run([*ctl, "shutdown"], env=env, capture_output=True)
    # the services' own benchmarks, each against throwaway databases, with the stack stopped
    for name in ("knowledge", "analytics"):
        if wanted(name):
            print(f"benchmarking {name}...", flush=True)
            save_section(name, importlib.import_module(f"scripts.bench_{name}").run())


def serve_fake_provider() -> None:
    """The loopback provider, in its own process so its work is not the load generator's."""
    from aiohttp import web

    from scripts.loopback import FakeProvider, Slow, openai_app

    fake = FakeProvider(script=[Slow([f"word{i} " for i in range(20)], gap_s=0.005, first_s=PROVIDER_FIRST_S)])
    fake.requests = _Forgetful()
    web.run_app(openai_app(fake), host="127.0.0.1", port=FAKE_PROVIDER_PORT, print=None, access_log=None)


class _Forgetful(list):
    """The fake keeps every request for tests; a benchmark only needs the count."""

    seen = 0

    def append(self, item) -> None:
        self.seen += 1

    def __len__(self) -> int:
        return self.seen


if __name__ == "__main__":
    if "--fake-provider" in sys.argv:
        serve_fake_provider()
    else:
        main()
