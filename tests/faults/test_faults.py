"""Faults under steady traffic, on the real supervisord.conf, Postgres and RabbitMQ.

Sixty visitors send about 20 messages a second between them (now and then two back to
back), each on its own SSE stream, as the widget does. During that traffic one fault at a
time: ``kill -9`` of each program, a broker restart, Postgres crash-stopped for 30 s and for
90 s. Afterwards, for every message accepted with 202: its reply completed, or it failed and
the visitor saw the ``error``; nothing is lost. Each conversation's messages are stored in
the order they were sent; analytics' figures equal the conversation service's; every
dead-letter queue is empty; and a turn is back within 1.5x of its pre-fault time within 30 s
of recovery. Figures go to test-artifacts/faults.json (docs/reliability.md reports them).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
from urllib.parse import unquote, urlsplit

import aiohttp
import pytest

from scripts import infra
from tests.e2e.test_analytics import _figures_match
from tests.e2e.test_follow_ups import shop  # noqa: F401 - the demo shop's chatbot, its FAQ indexed
from tests.faults.traffic import Traffic
from tests.support.infra import ROOT

pytestmark = pytest.mark.e2e

PROGRAMS = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")
STEADY_S = 8          # traffic before the fault, the baseline for turn time
AFTER_S = 25          # traffic after recovery; its last 15 s are compared with the baseline
RESULTS: dict[str, dict] = {}


def vhost() -> str:
    return unquote(urlsplit(os.environ["AMQP_URL"]).path.lstrip("/")) or "/"


def dead_letters() -> dict[str, int]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost(), "name", "messages"],
                         capture_output=True, text=True, check=True).stdout
    depths = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith(".dlq"):
            depths[parts[0]] = int(parts[1])
    return depths


async def healthy(stack, timeout: float = 180) -> float:
    """When the gateway's /health (every service, their databases, broker and consumers) is green."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(stack.gateway + "/health", timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    if resp.status == 200:
                        return time.monotonic()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.25)
    raise AssertionError(f"the stack did not recover within {timeout} s")


async def inject(stack, fault: str) -> float:
    """Cause ``fault``; returns how long the dependency was away (0 for a kill)."""
    kind, _, arg = fault.partition(":")
    if kind == "kill":
        pid = int(stack.ctl("pid", arg).strip())
        os.kill(pid, signal.SIGKILL)  # supervisord brings it back (autorestart)
        return 0.0
    if kind == "broker":
        started = time.monotonic()
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
        await asyncio.sleep(5)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
        return time.monotonic() - started
    if kind == "postgres":
        assert os.environ.get("AVATARCHAT_EMBEDDED_POSTGRES") == "true", (
            "the fault suite crash-stops Postgres, so it needs the embedded one (run make test without POSTGRES_URL)")
        started = time.monotonic()
        await asyncio.to_thread(infra.stop_embedded_postgres, "immediate")
        await asyncio.sleep(float(arg))
        await asyncio.to_thread(infra.start_embedded_postgres)
        return time.monotonic() - started
    raise ValueError(fault)


async def outcomes(api, shop, traffic: Traffic, timeout: float = 300) -> dict:
    """Wait until every accepted message's reply has ended; then read every transcript."""
    deadline = time.monotonic() + timeout
    while True:
        transcripts = {}
        for visitor in traffic.visitors:
            status, body = await api.call("GET", visitor.url.removeprefix(api.base) + "/messages",
                                          key=visitor.conversation["visitor_token"])
            assert status == 200, body
            transcripts[visitor.number] = body["data"]
        open_replies = [m for t in transcripts.values() for m in t if m["role"] == "assistant" and m["status"] == "pending"]
        stored = {m["id"] for t in transcripts.values() for m in t if m["role"] == "visitor"}
        missing = [s.message_id for v in traffic.visitors for s in v.sent if s.message_id not in stored]
        if not open_replies and not missing:
            return transcripts
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} accepted messages never stored, {len(open_replies)} replies "
                                 f"still pending after {timeout} s: lost")
        await asyncio.sleep(1)


@pytest.mark.parametrize("fault", [*(f"kill:{p}" for p in PROGRAMS), "broker", "postgres:30", "postgres:90"])
async def test_nothing_accepted_is_lost(api, stack, shop, fault):  # noqa: F811 - shop is a fixture
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        traffic = Traffic(http, stack.gateway, shop["embed_id"])
        await traffic.start()
        try:
            await asyncio.sleep(STEADY_S)
            fault_at = time.monotonic()
            before = traffic.turn_ms_between(fault_at - STEADY_S + 2, fault_at)
            away_s = await inject(stack, fault)
            recovered = await healthy(stack)
            await asyncio.sleep(AFTER_S)
            after = traffic.turn_ms_between(recovered + AFTER_S - 15, recovered + AFTER_S)
            await traffic.stop_sending()
            transcripts = await outcomes(api, shop, traffic)
        finally:
            await traffic.close()

    completed = failed_seen = failed_unseen = 0
    for visitor in traffic.visitors:
        messages = transcripts[visitor.number]
        by_id = {m["id"]: i for i, m in enumerate(messages)}
        # the visitor's messages were stored in the order they were sent
        order = [m["id"] for m in messages if m["role"] == "visitor"]
        assert order == [s.message_id for s in visitor.sent], f"visitor {visitor.number}: out of order"
        for sent in visitor.sent:
            reply = messages[by_id[sent.message_id] + 1]
            assert reply["role"] == "assistant"
            if reply["status"] == "completed":
                completed += 1
            elif reply["id"] in visitor.failed or sent.message_id in visitor.failed:
                failed_seen += 1
            else:
                failed_unseen += 1
    accepted = traffic.accepted
    assert not traffic.errors, traffic.errors
    await _figures_match(api, shop["key"], shop["tenant_id"], timeout=120)
    assert dead_letters() == {name: 0 for name in dead_letters()}
    p50_before, p50_after = statistics.median(before), statistics.median(after)
    figures = {"accepted": accepted, "completed": completed, "failed_visibly": failed_seen,
               "failed_unseen": failed_unseen, "lost": accepted - completed - failed_seen - failed_unseen,
               "refused_after_retries": sum(v.refused for v in traffic.visitors),
               "client_retries": sum(v.retries for v in traffic.visitors),
               "throttled": sum(v.throttled for v in traffic.visitors),
               "stream_reconnects": sum(v.reconnects for v in traffic.visitors),
               "away_s": round(away_s, 1), "recovery_s": round(recovered - fault_at - away_s, 1),
               "turn_p50_ms_before": round(p50_before, 1), "turn_p50_ms_after": round(p50_after, 1)}
    RESULTS[fault] = figures
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "faults.json").write_text(json.dumps(RESULTS, indent=2))
    assert accepted >= 20 * STEADY_S * 0.8, figures
    assert failed_unseen == 0 and figures["lost"] == 0, figures
    assert figures["refused_after_retries"] == 0, figures
    assert p50_after <= 1.5 * p50_before, figures
