"""A thousand event streams from one visitor token, from one IP, and OpenAI-compatible
completions held open by one tenant: the first few are served, the rest get a clear 429, and
the slots come back when streams close."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from tests.e2e.test_chat_turn import wait_until
from tests.hostile.conftest import error_of, random_ip
from scripts.loopback import SlowFirst

pytestmark = pytest.mark.e2e

PER_CONVERSATION = 3   # SSE_MAX_PER_CONVERSATION's default
PER_IP = 50            # SSE_MAX_PER_IP's default
PER_TENANT = 20        # CHAT_COMPLETIONS_MAX_PER_TENANT's default


async def open_streams(api, embed_id: str, attempts: list[tuple[dict, dict]]):
    """Open every (conversation, headers) at once; (opened responses, refusals as (status, body))."""
    async def one(conv: dict, headers: dict):
        resp = await api.http.get(
            f"{api.base}/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/stream",
            params={"token": conv["visitor_token"]}, headers={"Accept": "text/event-stream", **headers},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        if resp.status == 200:
            return resp
        body = await resp.json()
        resp.release()
        return resp.status, body

    results = await asyncio.gather(*(one(conv, headers) for conv, headers in attempts))
    opened = [r for r in results if isinstance(r, aiohttp.ClientResponse)]
    refused = [r for r in results if not isinstance(r, aiohttp.ClientResponse)]
    return opened, refused


def close(responses) -> None:
    for resp in responses:
        resp.close()


async def test_a_thousand_streams_from_one_token_get_three(api, stack, watch, bot):
    conv = await api.conversation(bot["embed_id"])
    async with watch("sse:1000-opens-one-token") as measured:
        opened, refused = await open_streams(api, bot["embed_id"], [(conv, {})] * 1000)
        try:
            assert len(opened) == PER_CONVERSATION and len(refused) == 1000 - PER_CONVERSATION
            for status, body in refused:
                assert status == 429 and error_of(body)["code"] == "too_many_streams", body
                assert body["error"]["details"] == {"limit": PER_CONVERSATION, "per": "conversation"}
        finally:
            close(opened)
    measured.check()

    async def reopened():
        again, _ = await open_streams(api, bot["embed_id"], [(conv, {})])
        close(again)
        return bool(again)
    await wait_until(reopened, what="a slot freed by a closed stream")


async def test_a_thousand_streams_from_one_ip_get_fifty(api, stack, watch, bot):
    ip = {"X-Forwarded-For": random_ip()}
    conversations = [await api.conversation(bot["embed_id"]) for _ in range(100)]
    attempts = [(conversations[i % 100], ip) for i in range(1000)]
    async with watch("sse:1000-opens-one-ip") as measured:
        opened, refused = await open_streams(api, bot["embed_id"], attempts)
        try:
            assert len(opened) == PER_IP, len(opened)
            assert len(refused) == 1000 - PER_IP
            assert all(status == 429 and error_of(body)["code"] == "too_many_streams" for status, body in refused)
            # another address is not held back by this one
            other, _ = await open_streams(api, bot["embed_id"], [(conversations[0], {"X-Forwarded-For": random_ip()})])
            assert len(other) == 1
            close(other)
        finally:
            close(opened)
    measured.check()


async def test_completions_held_open_by_one_tenant_are_capped(api, stack, watch, openai_fake):
    held_provider = openai_fake  # its replies wait for the test before the first token
    held_provider.script = [SlowFirst(["Held ", "reply."], hold_s=60)]
    tenant = await api.tenant(stack.admin_key, "Completions Ltd")
    key = tenant["api_key"]["key"]
    status, _ = await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                               json={"api_key": "sk-test-0000000000", "base_url": held_provider.url + "/v1"})
    assert status == 200
    bot = await api.chatbot(key, ai={"provider": "openai", "model": "gpt-4o-mini"})
    body = {"model": bot["id"], "stream": True, "messages": [{"role": "user", "content": "Hold on"}]}

    async def complete():
        async with api.http.post(f"{api.base}/api/v1/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {key}"}) as resp:
            return resp.status, (await resp.read())

    async with watch("completions:60-held-by-one-tenant") as measured:
        tasks = [asyncio.create_task(complete()) for _ in range(60)]
        # the refused ones answer at once; the others wait for the held provider
        await wait_until(lambda: _count_done(tasks, 60 - PER_TENANT), what="refusals past the cap")
        held_provider.release.set()
        results = await asyncio.gather(*tasks)
    refused = [r for r in results if r[0] == 429]
    served = [r for r in results if r[0] == 200]
    assert len(served) == PER_TENANT and len(refused) == 60 - PER_TENANT
    assert all(b"too_many_completions" in raw for _, raw in refused)
    assert all(b"data: [DONE]" in raw and b"Held " in raw for _, raw in served)
    measured.check()


async def _count_done(tasks, count: int) -> bool:
    return sum(task.done() for task in tasks) >= count

