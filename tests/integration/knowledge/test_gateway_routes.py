"""Tenant calls through the real gateway app to the real knowledge service."""
from __future__ import annotations

import uuid

from services.gateway.app import create_app as create_gateway
from services.gateway.settings import Settings as GatewaySettings
from tests.integration.knowledge.conftest import make_form, wait_for

ADMIN_KEY = "ak_admin_knowledge_tests"


async def test_tenant_uploads_lists_and_searches_through_the_gateway(
        aiohttp_client, knowledge, scratch_db, knowledge_vhost, monkeypatch):
    monkeypatch.setenv("KNOWLEDGE_URL", str(knowledge.client.make_url("")).rstrip("/"))
    gateway_app = create_gateway(GatewaySettings(GATEWAY_DATABASE_URL=scratch_db, AMQP_URL=knowledge_vhost,
                                                 ADMIN_API_KEY=ADMIN_KEY, VISITOR_TOKEN_SECRET="x" * 32))
    gateway = await aiohttp_client(gateway_app)

    resp = await gateway.post("/api/v1/admin/tenants", json={"name": "Acme"},
                              headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status == 201, await resp.text()
    auth = {"Authorization": f"Bearer {(await resp.json())['api_key']['key']}"}
    resp = await gateway.post("/api/v1/chatbots", json={"name": "Helper"}, headers=auth)
    assert resp.status == 201, await resp.text()
    base = f"/api/v1/chatbots/{(await resp.json())['id']}/knowledge"

    resp = await gateway.post(base + "/documents", headers=auth, data=make_form(
        "faq.md", b"# FAQ\n\n## Delivery\n\nWe deliver to every city in Portugal within 48 hours.\n",
        "text/markdown", title="FAQ"))
    assert resp.status == 202, await resp.text()
    document = await resp.json()

    async def indexed():
        r = await gateway.get(f"{base}/documents/{document['id']}", headers=auth)
        body = await r.json()
        return body if body["status"] == "indexed" else None
    await wait_for(indexed)

    resp = await gateway.get(base + "/documents", headers=auth, params={"status": "indexed"})
    assert [d["id"] for d in (await resp.json())["data"]] == [document["id"]]
    resp = await gateway.post(base + "/search", headers=auth, json={"query": "how fast is delivery in Portugal"})
    assert resp.status == 200
    hit = (await resp.json())["data"][0]
    assert hit["title"] == "FAQ" and "48 hours" in hit["snippet"] and hit["heading_path"] == ["FAQ", "Delivery"]
    resp = await gateway.get(base + "/stats", headers=auth)
    assert (await resp.json())["chunks"] == 1

    # the knowledge service's validation errors come back as they are
    resp = await gateway.post(base + "/search", headers=auth, json={"query": ""})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "validation_error"
    # another tenant's chatbot, a bad key, an unknown chatbot
    resp = await gateway.post(f"/api/v1/chatbots/{uuid.uuid4()}/knowledge/search", headers=auth, json={"query": "x"})
    assert resp.status == 404
    resp = await gateway.get(base + "/documents", headers={"Authorization": "Bearer ak_live_nope_nope"})
    assert resp.status == 401

    resp = await gateway.delete(f"{base}/documents/{document['id']}", headers=auth)
    assert resp.status == 200 and (await resp.json())["deleted"] is True
