"""One chat turn through the six real processes under the real supervisord.conf."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid

import asyncpg
import pytest


pytestmark = pytest.mark.e2e


async def wait_until(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.1)


def test_supervisor_runs_the_six_programs(stack):
    status = stack.ctl("status")
    for program in ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics"):
        assert re.search(rf"^{program}\s+RUNNING", status, re.M), status


async def test_gateway_health_reports_every_service(api, stack):
    status, body = await api.call("GET", "/health")
    assert status == 200
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    services = body["checks"]["services"]["services"]
    assert set(services) == {"conversation", "ai", "knowledge", "avatar", "analytics"}
    assert all(s["ok"] for s in services.values())


async def test_a_reply_streams_over_sse_in_order_and_is_stored_and_recorded(api, stack, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    assert conv["greeting"] == "Hello from Acme!"
    stream = await api.stream(embed, conv)
    correlation = uuid.uuid4().hex
    status, accepted = await api.say(embed, conv, "Can I return a bike after 30 days?", "c-1",
                                     headers={"X-Correlation-ID": correlation})
    assert status == 202 and accepted["status"] == "accepted"
    events = await stream.until("message.end")
    stream.response.close()

    # the mouth shapes of each delta's words follow it (docs/avatar.md, Lip-sync); the text's
    # own events are checked apart from them
    visemes = [e for e in events if e.event == "avatar.visemes"]
    assert visemes and all(events[events.index(v) - 1].event in ("message.delta", "avatar.visemes") for v in visemes)
    events = [e for e in events if e.event != "avatar.visemes"]
    names = [e.event for e in events]
    assert names[0] == "message.start"
    assert names[-2:] == ["avatar.animation", "message.end"]
    deltas = [e for e in events if e.event == "message.delta"]
    assert len(deltas) >= 2, "the reply should stream in several chunks"
    assert set(names[1:-2]) == {"message.delta"}
    end = events[-1].data
    assert "".join(d.data["text"] for d in deltas) == end["text"]
    assert end["text"] == "Sorry, I do not know that yet, please email help@acme.example."
    assert [d.data["offset"] for d in deltas] == [sum(len(x.data["text"]) for x in deltas[:i]) for i in range(len(deltas))]
    assert events[-2].data["clip"] and events[-2].data["reply_id"] == end["reply_id"]
    seq = end["reply_seq"]
    assert [e.id for e in events] == [f"{seq}-0", *[f"{seq}-{i}" for i in range(1, len(deltas) + 1)], f"{seq}-a", f"{seq}-end"]

    async def stored():
        messages = await api.transcript(embed, conv)
        return messages if len(messages) == 2 and messages[1]["status"] == "completed" else None
    messages = await wait_until(stored, what="reply stored by conversation")
    assert messages[0]["role"] == "visitor" and messages[0]["text"] == "Can I return a bike after 30 days?"
    assert messages[1]["text"] == end["text"]

    # analytics recorded every durable event of the turn
    tenant_id = bot["tenant"]["tenant"]["id"]
    conn = await asyncpg.connect(os.environ["ANALYTICS_DATABASE_URL"])
    try:
        async def recorded():
            rows = await conn.fetch("SELECT event_type FROM events WHERE tenant_id = $1", uuid.UUID(tenant_id))
            types = {r["event_type"] for r in rows}
            wanted = {"ChatbotCreatedEvent", "ConversationStartedEvent", "VisitorMessageReceivedEvent",
                      "AiReplyRequestedEvent", "AiReplyCompletedEvent", "AvatarAnimationSelectedEvent"}
            return wanted <= types
        await wait_until(recorded, what="analytics recorded the turn")
    finally:
        await conn.close()

    # every process that logs this turn logs it under the same correlation id (analytics records
    # events in batches and logs only trouble)
    async def logged():
        return all(f'"correlation_id": "{correlation}"' in stack.logs(p)
                   for p in ("gateway", "conversation", "ai", "avatar"))
    await wait_until(logged, timeout=10, what="correlation id in every process's log")


async def test_the_stream_sends_comment_heartbeats(api, bot):
    conv = await api.conversation(bot["embed_id"])
    stream = await api.stream(bot["embed_id"], conv)
    with pytest.raises(asyncio.TimeoutError):
        await stream.next(timeout=2.5)  # nothing to say, but the connection is kept alive
    stream.response.close()
    assert "ping" in stream.comments


async def test_a_reconnect_with_last_event_id_replays_replies_completed_meanwhile(api, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    await api.say(embed, conv, "hello", "r-1")

    async def done():
        messages = await api.transcript(embed, conv)
        return messages if messages and messages[-1]["status"] == "completed" else None
    messages = await wait_until(done, what="first reply")
    # the visitor was offline for the whole reply; its last seen event came before it
    stream = await api.stream(embed, conv, last_event_id="0-end")
    event = await stream.next()
    stream.response.close()
    assert event.event == "message.end" and event.id == f"{messages[-1]['seq']}-end"
    assert event.data["text"] == messages[-1]["text"] == "Hello from Acme!"


async def test_bad_input_gets_a_json_4xx_and_changes_nothing(api, bot):
    key, embed = bot["key"], bot["embed_id"]
    _, before = await api.call("GET", "/api/v1/chatbots", key=key)
    cases = [
        ("POST", "/api/widget/v1/no-such-embed/conversations", {}, None, 404),
        ("GET", "/api/v1/chatbots", {}, "ak_live_0000000000000000_wrong", 401),
        ("GET", "/api/v1/chatbots", {}, "not-even-a-key", 401),
        ("POST", "/api/v1/chatbots", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, key, 400),
        ("POST", "/api/v1/chatbots", {"data": b"name=x", "headers": {"Content-Type": "text/plain"}}, key, 415),
        ("POST", "/api/v1/chatbots", {"json": {"name": "x" * 10, "system_prompt": "y" * 400_000}}, key, 413),
        ("POST", "/api/v1/chatbots", {"json": {"name": ""}}, key, 422),
        ("POST", "/api/v1/chatbots", {"json": {"name": "x", "tenant_id": str(uuid.uuid4())}}, key, 422),
    ]
    for method, path, kwargs, auth, expected in cases:
        status, body = await api.call(method, path, key=auth, **kwargs)
        assert status == expected, (path, status, body)
        assert set(body["error"]) == {"code", "message", "details"}, body
    _, after = await api.call("GET", "/api/v1/chatbots", key=key)
    assert after == before

    conv = await api.conversation(embed)
    for payload, expected in [({"text": "", "client_message_id": "x"}, 422),
                              ({"text": "   ", "client_message_id": "x"}, 422),
                              ({"text": "a" * 5000, "client_message_id": "x"}, 422),
                              ({"text": "hi\u0000", "client_message_id": "x"}, 400),
                              ({"client_message_id": "x"}, 422)]:
        status, body = await api.call("POST", f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}/messages",
                                      key=conv["visitor_token"], json=payload)
        assert status == expected and "error" in body, (payload, status, body)
    other = await api.conversation(embed)
    status, body = await api.call("POST", f"/api/widget/v1/{embed}/conversations/{other['conversation_id']}/messages",
                                  key=conv["visitor_token"], json={"text": "hi", "client_message_id": "x"})
    assert status == 403, body  # one visitor's token does not open another's conversation
    assert await api.transcript(embed, conv) == [] and await api.transcript(embed, other) == []


async def test_a_retried_message_is_answered_once(api, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    first = await api.say(embed, conv, "hello", "same-id")
    second = await api.say(embed, conv, "hello", "same-id")
    assert first[1]["message_id"] == second[1]["message_id"]

    async def answered():
        messages = await api.transcript(embed, conv)
        return messages if messages and messages[-1]["status"] == "completed" else None
    await wait_until(answered)
    await asyncio.sleep(0.5)  # give a duplicate time to show up, were there one
    assert len(await api.transcript(embed, conv)) == 2


@pytest.mark.parametrize("program", ["conversation", "ai"])
async def test_an_accepted_message_survives_a_crashed_service(api, stack, bot, program):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    stream = await api.stream(embed, conv)
    assert "stopped" in stack.ctl("stop", program)
    try:
        status, _ = await api.say(embed, conv, "hello", f"crash-{program}")
        assert status == 202
    finally:
        assert "started" in stack.ctl("start", program)
    events = await stream.until("message.end", timeout=60)
    stream.response.close()
    assert events[-1].data["text"] == "Hello from Acme!"
    messages = await api.transcript(embed, conv)
    assert [m["status"] for m in messages] == ["received", "completed"]


async def test_killing_conversation_mid_turn_still_ends_in_a_stored_reply(api, stack, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    stream = await api.stream(embed, conv)
    status, _ = await api.say(embed, conv, "hello", "kill-1")
    assert status == 202
    stack.ctl("signal", "KILL", "conversation")  # no graceful anything; supervisord restarts it
    events = await stream.until("message.end", timeout=60)
    stream.response.close()

    async def stored():
        status, body = await api.call(
            "GET", f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}/messages", key=conv["visitor_token"])
        if status == 503:  # conversation is still restarting: the client is told to retry
            return None
        messages = body["data"]
        return messages if len(messages) == 2 and messages[1]["status"] == "completed" else None
    messages = await wait_until(stored, timeout=60, what="reply stored after the crash")
    assert messages[1]["text"] == events[-1].data["text"]


async def test_stream_events_reach_the_gateway_process_holding_the_connection(api, stack, bot):
    """Two gateway processes: the visitor streams from one and posts to the other."""
    port = int(os.environ["GATEWAY_PORT"]) + 1
    env = {**stack.env, "GATEWAY_PORT": str(port)}
    second = subprocess.Popen([sys.executable, "-m", "services.gateway"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = f"http://127.0.0.1:{port}"
    try:
        async def up():
            try:
                status, _ = await api.call("GET", "/health", base=other)
                return status == 200
            except Exception:  # noqa: BLE001 - not listening yet
                return False
        await wait_until(up, what="second gateway up")
        embed = bot["embed_id"]
        conv = await api.conversation(embed)
        stream = await api.stream(embed, conv, base=other)
        await api.say(embed, conv, "hello", "two-gw")
        events = await stream.until("message.end")
        stream.response.close()
        assert events[0].event == "message.start" and events[-1].data["text"] == "Hello from Acme!"
    finally:
        second.terminate()
        assert second.wait(timeout=30) == 0


async def test_sigterm_closes_streams_and_the_gateway_exits_cleanly(api, stack, bot):
    conv = await api.conversation(bot["embed_id"])
    stream = await api.stream(bot["embed_id"], conv)
    started = time.monotonic()
    output = stack.ctl("stop", "gateway")
    try:
        assert "stopped" in output, output
        assert time.monotonic() - started < 15
        assert await stream.next(timeout=5) is None  # the server ended the stream
        assert "exited" not in stack.ctl("status", "gateway").lower()
    finally:
        stack.ctl("start", "gateway")
        stack.wait_healthy(30)
