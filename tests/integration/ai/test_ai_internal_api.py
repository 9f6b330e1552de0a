"""Internal HTTP: tenant provider keys (stored encrypted, never returned, winning over the
platform key) and the usage ledger."""
from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from common import events as ev
from common.web import SETTINGS
from tests.integration.ai.conftest import PLATFORM_OPENAI_KEY
from scripts.loopback import Ok

TENANT_KEY = "sk-tenant-openai-abcdefgh9876"


async def test_a_tenant_base_url_reaching_inside_the_platform_is_refused(ai):
    """SSRF: with private addresses not allowed (the production default), a tenant cannot point
    its provider at our own services or the cloud's metadata address."""
    settings = ai.client.app[SETTINGS]
    allowed = settings.provider_allow_networks
    settings.allow_private_provider_urls, settings.provider_allow_networks = False, []
    try:
        for base_url in ("http://127.0.0.1:3010/internal", "http://localhost:3020/", "http://169.254.169.254/",
                         "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/"):
            resp = await ai.client.put(f"/internal/tenants/{uuid.uuid4()}/provider-keys/openai",
                                       json={"api_key": TENANT_KEY, "base_url": base_url})
            assert resp.status == 422 and (await resp.json())["error"]["code"] == "unsafe_base_url"
    finally:
        settings.allow_private_provider_urls, settings.provider_allow_networks = True, allowed


async def test_tenant_key_is_stored_encrypted_masked_and_wins(ai):
    tenant = uuid.uuid4()
    url = f"/internal/tenants/{tenant}/provider-keys/openai"
    assert (await ai.client.get(url)).status == 404

    resp = await ai.client.put(url, json={"api_key": TENANT_KEY, "base_url": ai.openai.url + "/v1"})
    assert resp.status == 200
    body = await resp.json()
    assert body["data"]["key_hint"] == "sk-...9876" and TENANT_KEY not in await resp.text()

    got = await (await ai.client.get(url)).json()
    assert got["data"] == {**body["data"], "updated_at": got["data"]["updated_at"]}
    assert got["data"]["base_url"] == ai.openai.url + "/v1"
    async with ai.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT key_ciphertext FROM provider_keys WHERE tenant_id = $1", tenant)
    assert TENANT_KEY.encode() not in bytes(stored)

    ai.openai.script = [Ok(["Hi."])]
    done = await ai.ask(ai.request("Do you ship to Spain?", tenant_id=tenant, provider="openai", model="gpt-4o-mini"))
    assert isinstance(done, ev.AiReplyCompletedEvent)
    assert ai.openai.headers[-1]["authorization"] == f"Bearer {TENANT_KEY}"

    assert (await ai.client.delete(url)).status == 204
    assert (await ai.client.delete(url)).status == 404
    await ai.ask(ai.request("Do you ship to Spain?", tenant_id=tenant, provider="openai", model="gpt-4o-mini"))
    assert ai.openai.headers[-1]["authorization"] == f"Bearer {PLATFORM_OPENAI_KEY}"


@pytest.mark.parametrize("path, body, status", [
    ("/internal/tenants/{t}/provider-keys/cohere", {"api_key": "sk-1234567890"}, 404),
    ("/internal/tenants/not-a-uuid/provider-keys/openai", {"api_key": "sk-1234567890"}, 400),
    ("/internal/tenants/{t}/provider-keys/openai", {"api_key": "short"}, 422),
    ("/internal/tenants/{t}/provider-keys/openai", {"api_key": "sk-1234567890", "base_url": "ftp://x"}, 422),
])
async def test_provider_key_validation(ai, path, body, status):
    resp = await ai.client.put(path.format(t=uuid.uuid4()), json=body)
    assert resp.status == status
    assert "error" in await resp.json()


async def test_usage_groups_cost_and_tokens(ai):
    tenant = uuid.uuid4()
    bot_a, bot_b = uuid.uuid4(), uuid.uuid4()
    ai.openai.script = [Ok(["One."], prompt_tokens=1_000_000, completion_tokens=0)]
    await ai.ask(ai.request("first question", tenant_id=tenant, chatbot_id=bot_a, provider="openai",
                            model="gpt-4o-mini"))
    await ai.ask(ai.request("second question", tenant_id=tenant, chatbot_id=bot_b, provider="openai",
                            model="gpt-4o-mini"))
    await ai.ask(ai.request("Hello", tenant_id=tenant, chatbot_id=bot_b))  # local, free
    await ai.ask(ai.request("Hello", chatbot_id=bot_b))  # another tenant: not counted

    today = date.today().isoformat()
    resp = await ai.client.get("/internal/usage", params={"tenant_id": str(tenant), "group_by": "chatbot",
                                                          "from": today, "to": today})
    assert resp.status == 200
    body = await resp.json()
    by_bot = {row["key"]: row for row in body["data"]}
    assert by_bot[str(bot_a)]["cost_usd"] == pytest.approx(0.15)
    assert by_bot[str(bot_b)]["replies"] == 2 and by_bot[str(bot_b)]["cost_usd"] == pytest.approx(0.15)
    assert body["totals"]["replies"] == 3 and body["totals"]["prompt_tokens"] >= 2_000_000
    assert body["totals"]["cost_usd"] == pytest.approx(0.30)

    by_model = {r["key"]: r for r in (await (await ai.client.get("/internal/usage", params={
        "tenant_id": str(tenant), "group_by": "model"})).json())["data"]}
    assert by_model["openai:gpt-4o-mini"]["replies"] == 2 and by_model["local:local-extractive"]["cost_usd"] == 0

    by_day = (await (await ai.client.get("/internal/usage", params={
        "tenant_id": str(tenant), "group_by": "day"})).json())["data"]
    assert [r["key"] for r in by_day] == [today] and by_day[0]["replies"] == 3

    yesterday = (date.today() - timedelta(days=1)).isoformat()
    empty = await (await ai.client.get("/internal/usage", params={
        "tenant_id": str(tenant), "from": yesterday, "to": yesterday})).json()
    assert empty["data"] == [] and empty["totals"]["cost_usd"] == 0

    bad = await ai.client.get("/internal/usage", params={"tenant_id": str(tenant), "group_by": "week"})
    assert bad.status == 400
