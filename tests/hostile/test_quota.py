"""Plan limits and quotas under pressure: uploads racing the document limit, crawls that would
run past it, and an anonymous visitor burning a tenant's monthly quota from one IP."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from tests.e2e.test_chat_turn import wait_until
from tests.hostile.conftest import error_of, random_ip
from tests.support.stack import Api

pytestmark = pytest.mark.e2e


async def limited_tenant(api, stack, **limits) -> tuple[str, str]:
    tenant = await api.tenant(stack.admin_key, "Limited Ltd")
    status, _ = await api.call("PATCH", f"/api/v1/admin/tenants/{tenant['tenant']['id']}", key=stack.admin_key,
                               json={"limits": limits})
    assert status == 200
    return tenant["api_key"]["key"], tenant["tenant"]["id"]


async def test_concurrent_uploads_cannot_pass_the_document_limit(api, stack, watch):
    key, _ = await limited_tenant(api, stack, max_documents=5)
    bots = [await api.chatbot(key, name=f"Bot {i}") for i in range(3)]  # the limit spans chatbots

    async def add(i: int):
        bot = bots[i % 3]
        return await api.call("POST", f"/api/v1/chatbots/{bot['id']}/knowledge/documents/text", key=key,
                              json={"text": f"Document number {i} about opening hours.", "title": f"Doc {i}"})

    async with watch("documents:60-racing-a-limit-of-5") as measured:
        results = await asyncio.gather(*(add(i) for i in range(60)))
    accepted = [body for status, body in results if status == 202]
    refused = [body for status, body in results if status != 202]
    assert len(accepted) == 5, [s for s, _ in results]
    assert all(error_of(body)["code"] == "plan_limit_reached" for body in refused)
    assert refused[0]["error"]["details"] == {"limit": "max_documents", "value": 5}
    stored = 0
    for bot in bots:
        _, page = await api.call("GET", f"/api/v1/chatbots/{bot['id']}/knowledge/documents", key=key)
        stored += len(page["data"])
    assert stored == 5
    # a crawl with no room left is refused before it fetches anything
    status, body = await api.call("POST", f"/api/v1/chatbots/{bots[0]['id']}/knowledge/crawls", key=key,
                                  json={"start_url": "https://shop.hostile.test/", "max_pages": 10})
    assert status == 403 and error_of(body)["code"] == "plan_limit_reached"
    measured.check()


async def test_a_crawl_takes_only_the_room_left_and_a_tenant_runs_two_at_once(api, stack, sites):
    async def robots(request):
        return web.Response(text="User-agent: *\nAllow: /\n", content_type="text/plain")

    async def page(request):
        number = int(request.path.strip("/") or 0)
        links = "".join(f'<a href="/{n}">page {n}</a>' for n in range(number + 1, number + 30))
        return web.Response(text=f"<html><body><h1>Page {number}</h1><p>Bikes, page {number}, with its own words "
                                 f"about frame size {number}.</p>{links}</body></html>", content_type="text/html")
    sites.pages["/robots.txt"] = robots
    for n in range(200):
        sites.pages[f"/{n}" if n else "/"] = page
    key, _ = await limited_tenant(api, stack, max_documents=4)
    bot = await api.chatbot(key)
    base = f"/api/v1/chatbots/{bot['id']}/knowledge/crawls"
    slow = {"start_url": sites.url("/"), "max_pages": 50, "max_depth": 3, "rate_per_second": 0.5}
    status, first = await api.call("POST", base, key=key, json=slow)
    assert status == 202 and first["options"]["max_pages"] == 4  # the room left, not the 50 asked
    status, second = await api.call("POST", base, key=key, json={**slow, "start_url": sites.url("/100")})
    assert status == 202
    status, body = await api.call("POST", base, key=key, json={**slow, "start_url": sites.url("/150")})
    assert status == 409 and error_of(body)["code"] == "too_many_crawls"
    assert body["error"]["details"] == {"running": 2, "max": 2}

    async def both_finished():
        rows = []
        for crawl in (first, second):
            _, row = await api.call("GET", f"{base}/{crawl['id']}", key=key)
            rows.append(row)
        return rows if all(r["status"] != "running" for r in rows) else None
    rows = await wait_until(both_finished, timeout=120, what="both crawls")
    assert sum(r["pages_queued"] for r in rows) == 4  # together they filled the plan, no more
    assert any("stopped early" in (r["reason"] or "") for r in rows), rows
    _, page_of_documents = await api.call("GET", f"/api/v1/chatbots/{bot['id']}/knowledge/documents", key=key,
                                          params={"limit": "200"})
    assert len(page_of_documents["data"]) == 4


async def test_one_ip_cannot_burn_a_tenants_quota(api, stack, watch, limited_gateway, victim):
    """One address starts conversations (each a new visitor with its own message limit) and
    sends messages across them: the per-IP limits stop it, a retried message counts once,
    and the tenant's other visitors and tenants are served."""
    key, _ = await limited_tenant(api, stack, monthly_message_quota=1000)
    bot = await api.chatbot(key)
    gateway = Api(api.http, limited_gateway)
    attacker = {"X-Forwarded-For": random_ip()}
    embed = bot["embed_id"]
    async with watch("quota:one-ip-burning-a-tenant", gateway=limited_gateway) as measured:
        started = [await gateway.call_h("POST", f"/api/widget/v1/{embed}/conversations", headers=attacker)
                   for _ in range(12)]
        conversations = [body for status, body, _ in started if status == 201]
        refused = [(body, headers) for status, body, headers in started if status != 201]
        assert len(conversations) == 5  # RATE_LIMIT_CONVERSATIONS_PER_IP_PER_HOUR in this gateway
        for body, headers in refused:
            assert error_of(body)["code"] == "rate_limited" and int(headers["Retry-After"]) >= 1
        sent, retried = [], []
        for i in range(40):
            conv = conversations[i % 5]
            status, body = await gateway.say(embed, conv, f"question {i}", f"burn-{i}", headers=attacker)
            sent.append(status)
            if status == 202:  # the client retries the same message: a request, but not a new message
                retried.append((await gateway.say(embed, conv, f"question {i}", f"burn-{i}", headers=attacker))[0])
        # a visitor of the same tenant elsewhere still gets through
        neighbour = {"X-Forwarded-For": random_ip()}
        status, conv, _ = await gateway.call_h("POST", f"/api/widget/v1/{embed}/conversations", headers=neighbour)
        assert status == 201
        assert (await gateway.say(embed, conv, "hello", "neighbour-1", headers=neighbour))[0] == 202
    # RATE_LIMIT_MESSAGES_PER_IP_PER_HOUR is 8 requests here: four messages and their retries
    assert sent.count(202) + retried.count(202) == 8 and set(sent) == {202, 429}
    status, usage = await api.call("GET", "/api/v1/tenant/usage", key=key)
    assert usage["messages"] == sent.count(202) + 1  # the attacker's and the neighbour's, each counted once
    measured.check()


async def test_a_retried_message_counts_once_against_the_quota(api, stack):
    key, _ = await limited_tenant(api, stack, monthly_message_quota=2)
    bot = await api.chatbot(key)
    conv = await api.conversation(bot["embed_id"])
    for _ in range(5):  # a flaky network: the same message sent five times
        status, body = await api.say(bot["embed_id"], conv, "When do you open?", "same-id")
        assert status == 202, body
    _, usage = await api.call("GET", "/api/v1/tenant/usage", key=key)
    assert usage["messages"] == 1
    assert (await api.say(bot["embed_id"], conv, "And on Sunday?", "second"))[0] == 202
    status, body = await api.say(bot["embed_id"], conv, "And on Monday?", "third")
    assert status == 403 and error_of(body)["code"] == "quota_exceeded"
    assert (await api.say(bot["embed_id"], conv, "When do you open?", "same-id"))[0] == 202  # still the same one


async def test_a_tenant_holds_at_most_fifty_api_keys(api, stack):
    tenant = await api.tenant(stack.admin_key, "Many Keys Ltd")
    key = tenant["api_key"]["key"]
    created = [await api.call("POST", "/api/v1/api-keys", key=key, json={"name": f"k{i}"}) for i in range(50)]
    assert [status for status, _ in created].count(201) == 49  # with the first one, fifty
    status, body = await api.call("POST", "/api/v1/api-keys", key=key, json={"name": "one too many"})
    assert status == 403 and error_of(body)["details"] == {"limit": "max_api_keys", "value": 50}
    assert (await api.call("DELETE", f"/api/v1/api-keys/{created[0][1]['id']}", key=key))[0] == 200
    assert (await api.call("POST", "/api/v1/api-keys", key=key, json={"name": "in its place"}))[0] == 201
