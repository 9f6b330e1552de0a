"""The scale-out stack under steady traffic, one fault after another: what visitors would notice.

Visitors talk through nginx (which balances the two gateways), each on its own SSE stream,
sending several messages (now and then two back to back); a site is crawled meanwhile. Each test
kills something with `docker kill` during that traffic, brings it back, and then checks, for
every message accepted with 202: it was stored in send order and its reply completed, or failed
and the visitor saw the `error`; no visitor saw a reply end twice or missed one that completed;
analytics counts what the conversation service stored; no dead-letter queue holds anything.
Tests run in file order against one stack (tests/scale/conftest.py).
"""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from tests.deploy.conftest import Http, create_shop, docker
from tests.faults.test_faults import outcomes
from tests.faults.traffic import Traffic
from tests.scale.conftest import BROKERS, GATEWAYS, PROGRAM_CONTAINERS, PUBLIC_URL, ScaleDeployment

pytestmark = pytest.mark.timeout(1500)  # the first test starts the stack (its fixture)
VISITORS = 12        # at a time; together about 3 messages a second through nginx
RATE = 3.0
STEADY_S = 8         # traffic before each fault
AFTER_S = 10         # traffic after the recovery
FIGURES: dict[str, dict] = {}


@pytest.fixture(scope="module")
def shop(scaled: ScaleDeployment, public: Http) -> dict:
    """A tenant, its chatbot (answering from the operator's LLM) with its FAQ uploaded, and a
    crawl of a small site started: the knowledge replicas share the ingestion."""
    made = create_shop(public, scaled.env["SERVICE_PASSWORD_ADMINKEY"])
    key, chatbot = made["key"], made["chatbot"]
    base = f"/api/v1/chatbots/{chatbot['id']}/knowledge"
    status, crawl, _ = public.call("POST", base + "/crawls", key=key, json_body={
        "start_url": "http://site/", "max_pages": 5, "max_depth": 2, "rate_per_second": 5})
    assert status == 202, crawl
    return {"tenant_id": made["tenant"]["id"], "key": key, "chatbot": chatbot, "embed_id": chatbot["embed_id"],
            "knowledge": base, "crawl": crawl}


def test_the_cluster_formed_by_config_and_every_queue_is_quorum(scaled: ScaleDeployment, shop: dict):
    assert scaled.running_brokers() == ["rabbit@rabbitmq-1", "rabbit@rabbitmq-2", "rabbit@rabbitmq-3"]
    types = scaled.queue_types()
    durable = {name: kind for name, kind in types.items() if not name.startswith("amq.gen-")}
    assert durable and set(durable.values()) == {"quorum"}, durable
    # the gateways' stream queues (server-named, one per process) are classic, exclusive
    assert {kind for name, kind in types.items() if name.startswith("amq.gen-")} == {"classic"}
    for service in (*GATEWAYS, *PROGRAM_CONTAINERS, *BROKERS, "frontend", "postgres"):
        assert scaled.health(service) == "running healthy", service


async def _under_traffic(scaled: ScaleDeployment, shop: dict, api, name: str, fault) -> dict:
    """Steady traffic; ``fault()`` during it (it returns once the stack is whole again); more
    traffic; then every accepted message's outcome, checked."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        traffic = Traffic(http, PUBLIC_URL, shop["embed_id"], visitors=VISITORS, rate=RATE, turns=5)
        await traffic.start()
        try:
            await asyncio.sleep(STEADY_S)
            started = time.monotonic()
            details = await fault()
            recovered_s = time.monotonic() - started
            await asyncio.sleep(AFTER_S)
            await traffic.stop_sending()
            transcripts = await outcomes(api, shop, traffic, timeout=300)
            await asyncio.sleep(2)  # the last message.end events reach the visitors
        finally:
            await traffic.close()
    figures = _check(traffic, transcripts)
    figures.update(details or {}, recovered_s=round(recovered_s, 1))
    await _analytics_match(scaled, api, shop)
    assert scaled.dead_letters() == {q: 0 for q in scaled.dead_letters()}
    FIGURES[name] = figures
    scaled.record(f"scale: {name}", json.dumps(figures))
    return figures


def _check(traffic: Traffic, transcripts: dict) -> dict:
    assert not traffic.errors, traffic.errors
    completed = failed_seen = 0
    for visitor in traffic.visitors:
        messages = transcripts[visitor.number]
        by_id = {m["id"]: i for i, m in enumerate(messages)}
        order = [m["id"] for m in messages if m["role"] == "visitor"]
        assert order == [s.message_id for s in visitor.sent], f"visitor {visitor.number}: out of send order"
        for sent in visitor.sent:
            reply = messages[by_id[sent.message_id] + 1]
            assert reply["role"] == "assistant"
            if reply["status"] == "completed":
                completed += 1
                # the visitor's stream showed it (live, or replayed after a reconnect)
                assert reply["id"] in visitor.ended, f"visitor {visitor.number} never saw reply {reply['id']}"
            else:
                assert reply["status"] == "failed", reply
                assert reply["id"] in visitor.failed or sent.message_id in visitor.failed, (
                    f"visitor {visitor.number}: reply {reply['id']} failed without an error event")
                failed_seen += 1
        assert visitor.ends_repeated == 0, f"visitor {visitor.number} saw a reply end twice"
    accepted = traffic.accepted
    assert accepted == completed + failed_seen
    assert sum(v.refused for v in traffic.visitors) == 0, "a visitor gave up on a message"
    return {"accepted": accepted, "completed": completed, "failed_visibly": failed_seen, "lost": 0,
            "answered_503": sum(v.unavailable for v in traffic.visitors),
            "stream_reconnects": sum(v.reconnects for v in traffic.visitors)}


async def _analytics_match(scaled: ScaleDeployment, api, shop: dict, timeout: float = 120) -> None:
    """Analytics' figures equal what the conversation service stored (its own database)."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    sql = ("SELECT json_build_object('conversations', (SELECT count(*) FROM conversations WHERE tenant_id = '{t}'), "
           "'messages', (SELECT count(*) FROM messages WHERE tenant_id = '{t}' AND role = 'visitor'), "
           "'replies', (SELECT count(*) FROM messages WHERE tenant_id = '{t}' AND role = 'assistant' "
           "AND status = 'completed'))").format(t=shop["tenant_id"])
    deadline = time.monotonic() + timeout
    while True:
        stored = json.loads(docker("exec", scaled.container("postgres"), "psql", "-U", "postgres", "-d",
                                   "avatarchat_conversation", "-Atc", sql).stdout)
        status, summary = await api.call("GET", "/api/v1/analytics/summary", key=shop["key"],
                                         params={"from": today, "to": today})
        assert status == 200, summary
        counted = {k: summary["current"][k] for k in stored}
        if counted == stored:
            return
        assert time.monotonic() < deadline, f"analytics {counted} != conversation {stored}"
        await asyncio.sleep(1)


async def _healthy(scaled: ScaleDeployment, *services: str, timeout: float = 240) -> None:
    await asyncio.to_thread(scaled.wait_healthy, services, timeout)


async def test_a_broker_node_is_killed_then_rejoins(scaled: ScaleDeployment, shop: dict, api):
    async def fault():
        scaled.kill("rabbitmq")  # the first node, the one the cluster formed on
        await asyncio.sleep(10)
        assert len(scaled.running_brokers(via="rabbitmq-2")) == 2
        scaled.start("rabbitmq")
        await _healthy(scaled, "rabbitmq")
        while len(scaled.running_brokers()) != 3:
            await asyncio.sleep(1)
        await _healthy(scaled, *GATEWAYS, *PROGRAM_CONTAINERS)
    await _under_traffic(scaled, shop, api, "a broker node killed, restarted, rejoined", fault)


async def test_a_gateway_is_killed_and_its_visitors_continue_on_the_other(scaled: ScaleDeployment, shop: dict, api):
    async def fault():
        scaled.kill("app")
        # its visitors' streams end and reconnect, with Last-Event-ID, through nginx to gateway-b;
        # their messages go there meanwhile
        await asyncio.sleep(20)
        scaled.start("app")
        await _healthy(scaled, "app")
    figures = await _under_traffic(scaled, shop, api, "a gateway killed", fault)
    assert figures["stream_reconnects"] > 0


async def test_an_ai_container_is_killed_mid_reply_and_the_other_completes_it(scaled: ScaleDeployment,
                                                                              shop: dict, api):
    async def fault():
        # replies stream for about 2 s each (the operator's model), so under this traffic some
        # are always being written: the ones chat-a was writing are taken over by chat-b
        scaled.kill("chat-a")
        await asyncio.sleep(10)
        scaled.start("chat-a")
        await _healthy(scaled, "chat-a")
    await _under_traffic(scaled, shop, api, "an ai (conversation+ai) container killed mid-reply", fault)


async def test_a_conversation_container_is_killed(scaled: ScaleDeployment, shop: dict, api):
    async def fault():
        scaled.kill("chat-b")
        await asyncio.sleep(10)
        scaled.start("chat-b")
        await _healthy(scaled, "chat-b")
    await _under_traffic(scaled, shop, api, "a conversation (conversation+ai) container killed", fault)


async def test_below_quorum_visitors_get_503_and_it_recovers_by_itself(scaled: ScaleDeployment, shop: dict, api):
    """Two of three broker nodes down: the last one pauses itself (pause_minority), nothing can be
    published, and the gateway answers 503 with Retry-After; the visitors' widgets retry. When the
    nodes return the cluster and every program recover without anyone's help."""
    async def fault():
        scaled.kill("rabbitmq-2")
        scaled.kill("rabbitmq-3")
        await asyncio.sleep(25)
        scaled.start("rabbitmq-2")
        scaled.start("rabbitmq-3")
        await _healthy(scaled, *BROKERS)
        while len(scaled.running_brokers()) != 3:
            await asyncio.sleep(1)
        await _healthy(scaled, *GATEWAYS, *PROGRAM_CONTAINERS)
    figures = await _under_traffic(scaled, shop, api, "below quorum (two of three nodes down)", fault)
    assert figures["answered_503"] > 0, "no visitor was told to retry while the broker was below quorum"


def test_the_crawl_finished_across_the_knowledge_replicas(scaled: ScaleDeployment, shop: dict, public: Http):
    deadline = time.monotonic() + 120
    while True:
        status, crawl, _ = public.call("GET", f"{shop['knowledge']}/crawls/{shop['crawl']['id']}", key=shop["key"])
        assert status == 200, crawl
        status, documents, _ = public.call("GET", f"{shop['knowledge']}/documents?limit=50", key=shop["key"])
        ready = [d for d in documents["data"] if d["status"] == "indexed"]
        if crawl["status"] == "completed" and len(ready) >= 4:
            break
        assert time.monotonic() < deadline, (crawl, documents)
        time.sleep(1)
    crawled = {d["url"] for d in ready if d["source"] == "crawl"}
    assert {"http://site/rentals.html", "http://site/repairs.html"} <= crawled, crawled
    status, found, _ = public.call("POST", f"{shop['knowledge']}/search", key=shop["key"],
                                   json_body={"query": "How much is a cargo bike per day?", "top_k": 3})
    assert status == 200 and any("45 euros" in hit["snippet"] for hit in found["data"]), found
