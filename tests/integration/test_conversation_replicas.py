"""Per-conversation order with several conversation processes competing on one (quorum) queue.

Three real ``python -m services.conversation`` processes share the database and the broker, as
three containers would. Many conversations each get a burst of messages, published in the
order the gateway accepted them (its ``seq``); one replica is killed (SIGKILL) half-way. Every
message is stored once, each conversation's in send order, and all replicas took part. The
sequence-and-hold mechanism (docs/scaling.md) keeps the order: its state is the conversation
row, locked in Postgres, not anything in a process.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from common import events as ev
from common.bus import Bus

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = int(os.environ.get("SCALE_ORDER_REPLICAS", "3"))  # docs/scaling.md measured 1 and 3
CONVERSATIONS = 40
MESSAGES = 6
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Replica:
    def __init__(self, number: int, db_url: str, amqp_url: str):
        self.number, self.port = number, free_port()
        self.log = ARTIFACTS / f"conversation-replica-{number}.log"
        ARTIFACTS.mkdir(exist_ok=True)
        env = {**os.environ, "CONVERSATION_DATABASE_URL": db_url, "AMQP_URL": amqp_url, "AMQP_QUEUE_TYPE": "quorum",
               "CONVERSATION_PORT": str(self.port), "INSTANCE_ID": f"replica-{number}", "LOG_TO_STDOUT": "true"}
        self.process = subprocess.Popen([sys.executable, "-m", "services.conversation"], cwd=ROOT, env=env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"

    async def healthy(self, http: aiohttp.ClientSession, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                async with http.get(self.base + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"replica {self.number} not healthy: {self.log.read_text()[-3000:]}")

    async def counter(self, http: aiohttp.ClientSession, metric: str) -> float:
        """The sum of ``metric``'s series in this process (the conversation service's)."""
        async with http.get(self.base + "/metrics") as resp:
            text = await resp.text()
        return sum(float(m.group(1)) for m in re.finditer(rf'^{metric}(?:{{[^}}]*}})? ([0-9.e+]+)$', text, re.M)
                   if "Event" not in m.group(0) or "VisitorMessageReceivedEvent" in m.group(0))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def replicas(scratch_db, scratch_vhost):
    made = [Replica(i, scratch_db, scratch_vhost) for i in range(REPLICAS)]
    yield made
    for replica in made:
        replica.stop()


async def test_each_conversation_stays_in_send_order_across_replicas_and_a_killed_one(replicas, scratch_db,
                                                                                      scratch_vhost):
    async with aiohttp.ClientSession() as http:
        for replica in replicas:
            await replica.healthy(http)
        tenant, chatbot = uuid.uuid4(), uuid.uuid4()
        conversations = []
        for _ in range(CONVERSATIONS):
            async with http.post(replicas[0].base + "/internal/conversations",
                                 json={"tenant_id": str(tenant), "chatbot_id": str(chatbot)}) as resp:
                assert resp.status == 201, await resp.text()
                body = await resp.json()
            conversations.append((uuid.UUID(body["conversation_id"]), uuid.UUID(body["visitor_id"])))

        gateway = Bus(scratch_vhost, "gateway", queue_type="quorum")
        await gateway.connect()
        sent: dict[uuid.UUID, list[uuid.UUID]] = {c: [] for c, _ in conversations}
        started = time.monotonic()
        try:
            # each conversation's messages back to back (as a visitor typing fast, or the widget
            # flushing a queue after a reconnect); the conversations interleaved
            for seq in range(1, MESSAGES + 1, 2):
                for conversation_id, visitor_id in conversations:
                    for n in (seq, seq + 1):
                        event = ev.VisitorMessageReceivedEvent(
                            tenant_id=tenant, chatbot_id=chatbot, conversation_id=conversation_id,
                            visitor_id=visitor_id, message_id=uuid.uuid4(), client_message_id=f"m{n}",
                            text=f"message {n}", chatbot=ev.ChatbotSnapshot(chatbot_id=chatbot, name="Bot"), seq=n)
                        await gateway.publish(event)
                        sent[conversation_id].append(event.message_id)
                if seq == 3 and REPLICAS > 1:
                    replicas[-1].kill()  # with its prefetched, unacked messages
        finally:
            await gateway.close()

        pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=2)
        try:
            deadline = time.monotonic() + 120
            while True:
                stored = await pool.fetchval("SELECT count(*) FROM messages WHERE role = 'visitor'")
                if stored >= CONVERSATIONS * MESSAGES or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            drained_s = time.monotonic() - started
            rows = await pool.fetch("SELECT conversation_id, id FROM messages WHERE role = 'visitor' "
                                    "ORDER BY conversation_id, seq")
        finally:
            await pool.close()
        stored_order: dict[uuid.UUID, list[uuid.UUID]] = {c: [] for c in sent}
        for row in rows:
            stored_order[row["conversation_id"]].append(row["id"])
        out_of_order = [c for c in sent if stored_order[c] != sent[c]]
        assert len(rows) == CONVERSATIONS * MESSAGES, f"{len(rows)} of {CONVERSATIONS * MESSAGES} stored"
        assert not out_of_order, f"{len(out_of_order)} conversations out of order"

        living = [r for r in replicas if r.process.poll() is None]
        consumed = [await r.counter(http, "events_consumed_total") for r in living]
        deferred = sum([await r.counter(http, "events_deferred_total") for r in living])
        gaps = sum([await r.counter(http, "message_order_gaps_total") for r in living])
    assert all(n > 0 for n in consumed), f"a replica took no messages: {consumed}"
    assert gaps == 0, f"{gaps} messages went on without their predecessor"
    figures = {"replicas": REPLICAS, "messages": len(rows), "drained_s": round(drained_s, 2),
               "consumed_per_living_replica": consumed, "deferred": deferred, "gaps": gaps}
    (ARTIFACTS / f"conversation-replicas-{REPLICAS}.json").write_text(json.dumps(figures, indent=2))
    print(figures)
