"""The tenant REST API and the widget's public side, against the running stack, from the
outside. Security points follow OWASP's API Security Top 10 (2023)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import aiohttp
import jwt
import pytest

from services.avatar.default_avatar import build_glb
from services.gateway.api import OPERATIONS as OPERATIONS_KEY
from services.gateway.app import create_app
from tests.conftest import ROOT
from tests.e2e.test_chat_turn import wait_until

pytestmark = pytest.mark.e2e
# every operation the gateway declares, as an app registers them
OPERATIONS = create_app()[OPERATIONS_KEY]


async def test_tenant_keys_and_chatbots_lifecycle(api, stack):
    tenant = await api.tenant(stack.admin_key, "Lifecycle Ltd")
    key = tenant["api_key"]["key"]
    assert key.startswith(f"ak_live_{tenant['api_key']['id']}_")

    status, me = await api.call("GET", "/api/v1/tenant", key=key)
    assert status == 200 and me["name"] == "Lifecycle Ltd" and me["usage"]["chatbots"] == 0

    created = await api.chatbot(key, name="Support", suggested_questions=["Where are you?"],
                                placement={"position": "bottom-left", "primary_colour": "#112233"})
    assert created["placement"]["position"] == "bottom-left"
    assert created["persona"]["tone"] == "friendly"  # defaults fill what was not sent
    status, patched = await api.call("PATCH", f"/api/v1/chatbots/{created['id']}", key=key,
                                     json={"persona": {"tone": "formal"}, "knowledge": {"top_k": 3}})
    assert status == 200
    assert patched["persona"]["tone"] == "formal" and patched["persona"]["greeting"] == "Hello from Acme!"
    assert patched["knowledge"] == {"top_k": 3, "score_threshold": 0.0}
    assert patched["placement"]["primary_colour"] == "#112233"

    status, snippet = await api.call("GET", f"/api/v1/chatbots/{created['id']}/embed-snippet", key=key)
    assert status == 200 and f'data-embed-id="{created["embed_id"]}"' in snippet["snippet"]
    assert snippet["snippet"].startswith("<script src=") and "embed.js" in snippet["snippet"]

    status, config = await api.call("GET", f"/api/widget/v1/{created['embed_id']}/config")
    assert status == 200
    assert config["suggested_questions"] == ["Where are you?"] and config["greeting"] == "Hello from Acme!"
    flat = repr(config)
    for secret in ("system_prompt", "fallback_answer", "allowed_origins", "tenant", "provider", created["id"]):
        assert secret not in flat, f"the public widget config leaks {secret}"

    # cursor pagination walks every chatbot exactly once
    for i in range(4):
        await api.chatbot(key, name=f"Bot {i}")
    seen, cursor = [], None
    while True:
        status, page = await api.call("GET", "/api/v1/chatbots", key=key,
                                      params={"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200 and len(page["data"]) <= 2
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len(set(seen)) == 5

    status, _ = await api.call("DELETE", f"/api/v1/chatbots/{created['id']}", key=key)
    assert status == 204
    status, _ = await api.call("GET", f"/api/v1/chatbots/{created['id']}", key=key)
    assert status == 404
    status, _ = await api.call("POST", f"/api/widget/v1/{created['embed_id']}/conversations")
    assert status == 404


async def test_api_keys_are_shown_once_revoked_at_once_and_scoped(api, stack):
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    status, read_key = await api.call("POST", "/api/v1/api-keys", key=key, json={"name": "dashboard", "scope": "read"})
    assert status == 201 and read_key["key"].startswith("ak_live_")
    status, chat_key = await api.call("POST", "/api/v1/api-keys", key=key, json={"scope": "chat"})
    assert status == 201

    status, listed = await api.call("GET", "/api/v1/api-keys", key=key)
    assert status == 200 and len(listed["data"]) == 3
    assert all(k["key"] is None for k in listed["data"]), "a listed key must never show its secret"
    secret = read_key["key"].rsplit("_", 1)[1]
    logs = "".join(stack.logs(p) for p in ("gateway",))
    assert secret not in logs and read_key["key"] not in logs

    # scope per route: read keys read, chat keys only chat
    assert (await api.call("GET", "/api/v1/chatbots", key=read_key["key"]))[0] == 200
    status, body = await api.call("POST", "/api/v1/chatbots", key=read_key["key"], json={"name": "x"})
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert (await api.call("GET", "/api/v1/chatbots", key=chat_key["key"]))[0] == 403

    # revoked keys stop working at once
    status, revoked = await api.call("DELETE", f"/api/v1/api-keys/{read_key['id']}", key=key)
    assert status == 200 and revoked["revoked_at"]
    status, body = await api.call("GET", "/api/v1/chatbots", key=read_key["key"])
    assert status == 401 and body["error"]["code"] == "unauthorized"

    # a forged key: right id, wrong secret
    forged = read_key["key"].rsplit("_", 1)[0] + "_" + "A" * 43
    assert (await api.call("GET", "/api/v1/chatbots", key=forged))[0] == 401
    assert (await api.call("GET", "/api/v1/chatbots", key=stack.admin_key))[0] == 401


async def test_mass_assignment_cannot_change_tenant_or_limits(api, stack):
    tenant = await api.tenant(stack.admin_key)
    key, tenant_id = tenant["api_key"]["key"], tenant["tenant"]["id"]
    other = await api.tenant(stack.admin_key)
    for payload in ({"name": "x", "limits": {"max_chatbots": 1000}}, {"name": "x", "max_chatbots": 1000},
                    {"name": "x", "id": other["tenant"]["id"]}):
        status, body = await api.call("PATCH", "/api/v1/tenant", key=key, json=payload)
        assert status == 422, body
    status, bot = await api.call("POST", "/api/v1/chatbots", key=key,
                                 json={"name": "x", "tenant_id": other["tenant"]["id"]})
    assert status == 422
    status, me = await api.call("GET", "/api/v1/tenant", key=key)
    assert me["id"] == tenant_id and me["limits"]["max_chatbots"] == 10
    # tenants cannot reach the admin routes either
    status, _ = await api.call("PATCH", f"/api/v1/admin/tenants/{tenant_id}", key=key,
                               json={"limits": {"max_chatbots": 1000}})
    assert status == 401


async def test_plan_limits_and_quota_give_a_clear_4xx(api, stack):
    tenant = await api.tenant(stack.admin_key)
    key, tenant_id = tenant["api_key"]["key"], tenant["tenant"]["id"]
    status, _ = await api.call("PATCH", f"/api/v1/admin/tenants/{tenant_id}", key=stack.admin_key,
                               json={"limits": {"max_chatbots": 1, "monthly_message_quota": 1}})
    assert status == 200
    bot = await api.chatbot(key)
    status, body = await api.call("POST", "/api/v1/chatbots", key=key, json={"name": "second"})
    assert status == 403 and body["error"]["code"] == "plan_limit_reached"

    conv = await api.conversation(bot["embed_id"])
    assert (await api.say(bot["embed_id"], conv, "hello", "q1"))[0] == 202
    status, body = await api.say(bot["embed_id"], conv, "hello again", "q2")
    assert status == 403 and body["error"]["code"] == "quota_exceeded"
    status, usage = await api.call("GET", "/api/v1/tenant/usage", key=key)
    assert usage["messages"] == 1 and usage["monthly_message_quota"] == 1


async def test_origins_are_enforced_on_every_widget_call(api, stack):
    tenant = await api.tenant(stack.admin_key)
    bot = await api.chatbot(tenant["api_key"]["key"], allowed_origins=["https://shop.example"])
    embed = bot["embed_id"]
    good, bad = {"Origin": "https://shop.example"}, {"Origin": "https://evil.example"}
    status, _, headers = await api.call_h("GET", f"/api/widget/v1/{embed}/config", headers=good)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://shop.example"
    for headers in (bad, {}):
        status, body = await api.call("GET", f"/api/widget/v1/{embed}/config", headers=headers)
        assert status == 403 and body["error"]["code"] == "origin_not_allowed"
        status, _ = await api.call("POST", f"/api/widget/v1/{embed}/conversations", headers=headers)
        assert status == 403
    conv = await api.conversation(embed, headers=good)
    status, _ = await api.say(embed, conv, "hi", "o1", headers=bad)
    assert status == 403
    status, _ = await api.call("GET", f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}/stream",
                               params={"token": conv["visitor_token"]}, headers=bad)
    assert status == 403
    status, _ = await api.say(embed, conv, "hi", "o2", headers=good)
    assert status == 202


async def test_visitor_tokens_forged_expired_or_for_another_conversation_are_refused(api, stack, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    path = f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}"
    claims = jwt.decode(conv["visitor_token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "not-our-secret-but-long-enough-for-hs256", algorithm="HS256")
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, os.environ["VISITOR_TOKEN_SECRET"], algorithm="HS256")
    none_alg = jwt.encode(claims, None, algorithm="none")
    for token, code in ((forged, "unauthorized"), (expired, "token_expired"), (none_alg, "unauthorized"),
                        ("garbage", "unauthorized")):
        status, body = await api.call("GET", path + "/messages", key=token)
        assert status == 401 and body["error"]["code"] == code, (token, body)
    other_bot_conv = await api.conversation(embed)
    status, _ = await api.call("GET", f"/api/widget/v1/{embed}/conversations/{other_bot_conv['conversation_id']}"
                                      "/messages", key=conv["visitor_token"])
    assert status == 403
    # an expired token can be refreshed, within a grace period
    status, fresh = await api.call("POST", path + "/token", key=expired)
    assert status == 200
    assert (await api.call("GET", path + "/messages", key=fresh["visitor_token"]))[0] == 200


async def test_visitor_rate_limit_holds_across_two_gateway_processes(api, stack, bot):
    port = int(os.environ["GATEWAY_PORT"]) + 2
    second = subprocess.Popen([sys.executable, "-m", "services.gateway"], cwd=ROOT,
                              env={**stack.env, "GATEWAY_PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other = f"http://127.0.0.1:{port}"
    try:
        async def up():
            try:
                return (await api.call("GET", "/health", base=other))[0] == 200
            except Exception:  # noqa: BLE001 - not listening yet
                return False
        await wait_until(up, what="second gateway")
        embed = bot["embed_id"]
        conv = await api.conversation(embed)
        statuses = []
        for i in range(24):  # the limit is 20 a minute, alternating between the two gateways
            status, body, headers = await api.call_h(
                "POST", f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}/messages",
                base=other if i % 2 else None, key=conv["visitor_token"],
                json={"text": f"message {i}", "client_message_id": f"rl-{i}"})
            statuses.append(status)
            if status == 429:
                assert int(headers["Retry-After"]) >= 1
                assert headers["RateLimit-Remaining"] == "0" and body["error"]["code"] == "rate_limited"
            else:
                assert int(headers["RateLimit-Remaining"]) >= 0 and headers["RateLimit-Limit"] == "20"
        assert statuses.count(202) == 20 and statuses[20:] == [429] * 4
    finally:
        second.terminate()
        second.wait(timeout=30)


async def test_tenant_reads_conversations_with_filters_and_transcripts(api, stack, bot):
    key, embed, chatbot_id = bot["key"], bot["embed_id"], bot["chatbot"]["id"]
    first = await api.conversation(embed)
    second = await api.conversation(embed)
    await api.say(embed, first, "hello", "t1")

    async def answered():
        messages = await api.transcript(embed, first)
        return len(messages) == 2 and messages[1]["status"] == "completed"
    await wait_until(answered)
    status, page = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/conversations", key=key)
    assert status == 200
    assert [c["id"] for c in page["data"]] == [second["conversation_id"], first["conversation_id"]]  # newest first
    status, page = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/conversations", key=key,
                                  params={"visitor_id": first["visitor_id"]})
    assert [c["id"] for c in page["data"]] == [first["conversation_id"]] and page["data"][0]["messages"] == 2
    status, page = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/conversations", key=key,
                                  params={"from": "2999-01-01T00:00:00Z"})
    assert status == 200 and page["data"] == []
    status, transcript = await api.call("GET", f"/api/v1/conversations/{first['conversation_id']}", key=key)
    assert status == 200 and [m["role"] for m in transcript["messages"]] == ["visitor", "assistant"]
    status, body = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/conversations", key=key,
                                  params={"from": "yesterday"})
    assert status == 422


NOT_OBJECTS = {"provider"}
SAMPLE_BODIES = {
    "AnimationMapIn": {"animation_map": {"idle": "idle"}}, "ChatbotAvatarIn": {"avatar_id": None},
    "FeedbackIn": {"rating": "down"}, "TextIn": {"text": "hijacked"}, "UrlIn": {"url": "https://hijack.invalid/"}, "SearchIn": {"query": "secret"},
    "CrawlIn": {"start_url": "https://hijack.invalid/"}, "SettingsIn": {"chunk_size": 100},
    "ChatbotPatch": {"name": "hijacked"}, "ChatbotIn": {"name": "hijacked"}, "TenantPatch": {"name": "hijacked"},
    "AdminTenantPatch": {"limits": {"max_chatbots": 999}}, "ApiKeyIn": {"name": "hijacked"},
    "TenantIn": {"name": "hijacked"}, "MessageIn": {"text": "hijacked", "client_message_id": "bola"},
    "RolePatch": {"role": "owner"},
}


async def _reply_of(api, embed_id: str, conv: dict) -> str | None:
    replies = [m for m in await api.transcript(embed_id, conv) if m["role"] == "assistant"]
    return replies[0]["id"] if replies and replies[0]["status"] != "pending" else None


# What tenant B gets from each route aimed at tenant A's objects, route by route: admin
# routes need the admin key (401), visitor routes refuse a token of another conversation
# (403), tenant routes do not find what is not yours (404). A new route fails the sweep until
# its answer is decided here.
EXPECTED_FOR_ANOTHER_TENANT = {
    "GET /api/v1/admin/tenants/{tenant_id}": 401,
    "PATCH /api/v1/admin/tenants/{tenant_id}": 401,
    "DELETE /api/v1/admin/tenants/{tenant_id}": 401,
    "DELETE /api/v1/api-keys/{key_id}": 404,
    "GET /api/v1/chatbots/{chatbot_id}": 404,
    "PATCH /api/v1/chatbots/{chatbot_id}": 404,
    "DELETE /api/v1/chatbots/{chatbot_id}": 404,
    "GET /api/v1/chatbots/{chatbot_id}/embed-snippet": 404,
    "GET /api/v1/chatbots/{chatbot_id}/conversations": 404,
    "GET /api/v1/conversations/{conversation_id}": 404,
    "DELETE /api/v1/conversations/{conversation_id}/visitor-session": 404,
    "POST /api/widget/v1/{embed_id}/conversations/{conversation_id}/token": 403,
    "POST /api/widget/v1/{embed_id}/conversations/{conversation_id}/messages": 403,
    "GET /api/widget/v1/{embed_id}/conversations/{conversation_id}/messages": 403,
    "GET /api/widget/v1/{embed_id}/conversations/{conversation_id}/stream": 403,
    "POST /api/widget/v1/{embed_id}/conversations/{conversation_id}/replies/{reply_id}/cancel": 403,
    "POST /api/widget/v1/{embed_id}/conversations/{conversation_id}/replies/{reply_id}/feedback": 403,
    "POST /api/widget/v1/{embed_id}/conversations/{conversation_id}/handoff": 403,
    "GET /api/widget/v1/{embed_id}/conversations/{conversation_id}/replies/{reply_id}/speech": 403,
    "GET /api/v1/chatbots/{chatbot_id}/visitors/{visitor_id}/export": 404,
    "DELETE /api/v1/chatbots/{chatbot_id}/visitors/{visitor_id}": 404,
    "POST /api/v1/replies/{reply_id}/cancel": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/documents": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/documents/text": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/documents/url": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/documents": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/documents/{document_id}": 404,
    "PUT /api/v1/chatbots/{chatbot_id}/knowledge/documents/{document_id}": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/documents/{document_id}/resync": 404,
    "DELETE /api/v1/chatbots/{chatbot_id}/knowledge/documents/{document_id}": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/crawls": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/crawls": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/crawls/{crawl_id}": 404,
    "POST /api/v1/chatbots/{chatbot_id}/knowledge/search": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/stats": 404,
    "GET /api/v1/chatbots/{chatbot_id}/knowledge/settings": 404,
    "PATCH /api/v1/chatbots/{chatbot_id}/knowledge/settings": 404,
    "GET /api/v1/avatars/{avatar_id}": 404,
    "DELETE /api/v1/avatars/{avatar_id}": 404,
    "PUT /api/v1/avatars/{avatar_id}/animation-map": 404,
    "PUT /api/v1/chatbots/{chatbot_id}/avatar": 404,
    "GET /api/v1/chatbots/{chatbot_id}/avatar": 404,
    "GET /api/v1/analytics/chatbots/{chatbot_id}": 404,
    "PATCH /api/v1/users/{user_id}": 404,
    "DELETE /api/v1/users/{user_id}": 404,
    "POST /api/v1/users/{user_id}/reset-link": 404,
    "DELETE /api/v1/invites/{invite_id}": 404,
}


async def test_no_route_lets_one_tenant_touch_anothers_objects(api, stack):
    """One table over every declared route (BOLA, OWASP API1): a new route is covered the day it
    is added, and this test fails until its path parameters have an object here and its
    answer is in EXPECTED_FOR_ANOTHER_TENANT. Tenant and admin routes are swept with B's API key
    and again with the console session of B's owner (cookie and CSRF token: the same answers).
    Visitor routes are swept twice more with tokens of A's own chatbot: another conversation's
    token (the token check refuses), and a token whose conversation is right but whose reply is
    another conversation's (the ownership check refuses)."""
    a, a_owner = await api.owner_session(stack.admin_key, "Tenant A")
    b, b_owner = await api.owner_session(stack.admin_key, "Tenant B")
    a_key, b_key = a["api_key"]["key"], b["api_key"]["key"]
    status, a_invite = await api.call("POST", "/api/v1/invites", key=a_key,
                                      json={"email": "pending@tenant-a.example", "role": "editor"})
    assert status == 201, a_invite
    a_bot = await api.chatbot(a_key, name="A's bot")
    b_bot = await api.chatbot(b_key, name="B's bot")
    a_conv = await api.conversation(a_bot["embed_id"])
    a_other_conv = await api.conversation(a_bot["embed_id"])  # the same chatbot, another visitor
    b_conv = await api.conversation(b_bot["embed_id"])
    status, a_extra_key = await api.call("POST", "/api/v1/api-keys", key=a_key, json={"name": "a2"})
    assert (await api.say(a_bot["embed_id"], a_conv, "hello", "sweep-1"))[0] == 202
    a_reply = await wait_until(lambda: _reply_of(api, a_bot["embed_id"], a_conv), what="A's reply")
    form = aiohttp.FormData()
    form.add_field("file", build_glb(), filename="a.glb", content_type="model/gltf-binary")
    form.add_field("name", "A's avatar")
    status, a_avatar = await api.call("POST", "/api/v1/avatars", key=a_key, data=form)
    assert status == 201, a_avatar
    knowledge = f"/api/v1/chatbots/{a_bot['id']}/knowledge"
    status, a_document = await api.call("POST", knowledge + "/documents/text", key=a_key,
                                        json={"text": "Tenant A's secret recipe.", "title": "A"})
    assert status == 202, a_document
    status, a_crawl = await api.call("POST", knowledge + "/crawls", key=a_key,
                                     json={"start_url": "https://a-shop.invalid/", "max_pages": 1})
    assert status == 202, a_crawl
    objects_of_a = {"chatbot_id": a_bot["id"], "conversation_id": a_conv["conversation_id"],
                    "key_id": a_extra_key["id"], "tenant_id": a["tenant"]["id"], "embed_id": a_bot["embed_id"],
                    "reply_id": a_reply, "avatar_id": a_avatar["id"], "document_id": a_document["id"],
                    "crawl_id": a_crawl["id"], "visitor_id": a_conv["visitor_id"],
                    "user_id": a_owner.info["user"]["id"], "invite_id": a_invite["id"]}
    before = await api.call("GET", f"/api/v1/chatbots/{a_bot['id']}", key=a_key)

    async def attempt(operation, objects: dict, credential: str | dict) -> tuple[int, dict]:
        """``credential``: a Bearer token, or a console session's headers."""
        body = SAMPLE_BODIES.get(operation.body.__name__, {}) if operation.body else None
        kwargs = {"json": body} if body is not None else {}
        if operation.path.endswith("/stream"):
            kwargs["timeout"] = aiohttp.ClientTimeout(total=10)
        if isinstance(credential, dict):
            kwargs["headers"] = dict(credential)
            credential = None
        return await api.call(operation.method, operation.path.format(**objects), key=credential, **kwargs)

    swept = 0
    for operation in OPERATIONS:
        if not operation.path_params or operation.auth == "public":
            continue  # public routes take an embed id on purpose: anyone may start a chat
        if set(operation.path_params) <= NOT_OBJECTS:
            continue  # e.g. /provider-keys/{provider}: always the caller's own
        missing = set(operation.path_params) - objects_of_a.keys()
        assert not missing, f"{operation.method} {operation.path}: add {missing} to this sweep"
        route = f"{operation.method} {operation.path}"
        assert route in EXPECTED_FOR_ANOTHER_TENANT, f"{route}: decide what another tenant gets"
        credentials = [b_conv["visitor_token"]] if operation.auth == "visitor" else [b_key, b_owner.headers]
        for credential in credentials:
            status, response = await attempt(operation, objects_of_a, credential)
            assert status == EXPECTED_FOR_ANOTHER_TENANT[route], \
                f"{route} gave B ({'session' if isinstance(credential, dict) else 'token'}) {status}: {response}"
            assert set(response) == {"error"}, response
        swept += 1
        if operation.auth != "visitor":
            continue
        # a valid token of A's own chatbot, for another conversation: the token does not open it
        status, response = await attempt(operation, objects_of_a, a_other_conv["visitor_token"])
        assert status == 403 and response["error"]["code"] == "forbidden", f"{route}: {status} {response}"
        if "reply_id" in operation.path_params:
            # the token's own conversation, another conversation's reply: the ownership check refuses
            own = {**objects_of_a, "conversation_id": a_other_conv["conversation_id"]}
            status, response = await attempt(operation, own, a_other_conv["visitor_token"])
            assert status == 404 and response["error"]["code"] == "not_found", f"{route}: {status} {response}"
    assert swept == len(EXPECTED_FOR_ANOTHER_TENANT)

    assert await api.call("GET", f"/api/v1/chatbots/{a_bot['id']}", key=a_key) == before
    assert (await api.call("GET", "/api/v1/chatbots", key=a_extra_key["key"]))[0] == 200  # not revoked
    assert (await api.call("GET", f"/api/v1/avatars/{a_avatar['id']}", key=a_key))[0] == 200  # not deleted
    status, document = await api.call("GET", f"{knowledge}/documents/{a_document['id']}", key=a_key)
    assert status == 200 and document["title"] == "A"
    status, tenant_a = await api.call("GET", "/api/v1/tenant", key=a_key)
    assert tenant_a["name"] == "Tenant A" and tenant_a["limits"]["max_chatbots"] == 10
    status, a_users = await api.call("GET", "/api/v1/users", headers=a_owner.headers)
    assert [(u["id"], u["role"]) for u in a_users["data"]] == [(a_owner.info["user"]["id"], "owner")]
    status, a_invites = await api.call("GET", "/api/v1/invites", key=a_key)
    assert [i["id"] for i in a_invites["data"]] == [a_invite["id"]]  # not withdrawn
    assert (await api.call("GET", f"/api/widget/v1/{a_bot['embed_id']}/conversations/{a_conv['conversation_id']}"
                                  "/messages", key=a_conv["visitor_token"]))[0] == 200  # A's visitor still in
    # and lists never show another tenant's objects
    for path in ("/api/v1/chatbots", "/api/v1/api-keys", "/api/v1/users", "/api/v1/invites"):
        for credential in ({"Authorization": f"Bearer {b_key}"}, b_owner.headers):
            status, page = await api.call("GET", path, headers=dict(credential))
            ids = {item["id"] for item in page["data"]}
            assert not ids & {a_bot["id"], a_extra_key["id"], a_owner.info["user"]["id"], a_invite["id"]}
    status, page = await api.call("GET", f"/api/v1/chatbots/{b_bot['id']}/conversations", key=b_key)
    assert a_conv["conversation_id"] not in {c["id"] for c in page["data"]}


# Every object id a request carries in its body or its query string (the path's are swept
# above), with what tenant B gets when it names one of A's, and B's own objects elsewhere.
IDS_IN_BODIES_AND_QUERIES = {
    **{f"GET {path} query.chatbot_id": 404 for path in (
        "/api/v1/analytics/summary", "/api/v1/analytics/visitors", "/api/v1/analytics/costs",
        "/api/v1/analytics/unanswered", "/api/v1/analytics/feedback", "/api/v1/analytics/export/conversations.csv",
        "/api/v1/analytics/export/conversations.jsonl", "/api/v1/analytics/export/conversations.json",
        "/api/v1/analytics/export/metrics.csv", "/api/v1/analytics/export/metrics.jsonl",
        "/api/v1/analytics/export/metrics.json")},
    "POST /api/v1/chatbots body.avatar_id": 404,
    "PATCH /api/v1/chatbots/{chatbot_id} body.avatar_id": 404,
    "PUT /api/v1/chatbots/{chatbot_id}/avatar body.avatar_id": 404,
    "PUT /api/v1/avatars/{avatar_id}/animation-map body.chatbot_id": 404,
    "POST /api/v1/chat/completions body.model": 404,
    # a filter within B's own chatbot: an empty page, never A's conversations
    "GET /api/v1/chatbots/{chatbot_id}/conversations query.visitor_id": 200,
    "GET /api/v1/conversations query.visitor_id": 200,
    "GET /api/v1/conversations query.chatbot_id": 200,
    # B's owner cannot move their session into A
    "POST /api/v1/auth/switch-tenant body.tenant_id": 403,
}
# ids that name no other tenant's object: stored as given, or the caller's own choice
NOT_OBJECT_FIELDS = {"body.animation_map_id", "body.client_message_id", "query.embed_id"}


async def test_object_ids_in_bodies_and_query_strings_are_checked_too(api, stack):
    a = await api.tenant(stack.admin_key, "Tenant A")
    b, b_owner = await api.owner_session(stack.admin_key, "Tenant B")
    a_key, b_key = a["api_key"]["key"], b["api_key"]["key"]
    a_bot, b_bot = await api.chatbot(a_key, name="A's bot"), await api.chatbot(b_key, name="B's bot")
    avatars = {}
    for name, key in (("a", a_key), ("b", b_key)):
        form = aiohttp.FormData()
        form.add_field("file", build_glb(), filename=f"{name}.glb", content_type="model/gltf-binary")
        status, avatars[name] = await api.call("POST", "/api/v1/avatars", key=key, data=form)
        assert status == 201
    a_conv = await api.conversation(a_bot["embed_id"])
    b_paths = {"chatbot_id": b_bot["id"], "avatar_id": avatars["b"]["id"]}
    a_ids = {"chatbot_id": a_bot["id"], "avatar_id": avatars["a"]["id"], "model": a_bot["id"],
             "visitor_id": a_conv["visitor_id"], "tenant_id": a["tenant"]["id"]}
    bodies = {"POST /api/v1/chatbots": {"name": "B2"}, "PATCH /api/v1/chatbots/{chatbot_id}": {},
              "PUT /api/v1/chatbots/{chatbot_id}/avatar": {}, "PUT /api/v1/avatars/{avatar_id}/animation-map":
              {"animation_map": {"idle": "idle"}},
              "POST /api/v1/chat/completions": {"messages": [{"role": "user", "content": "A's secrets?"}]},
              "POST /api/v1/auth/switch-tenant": {}}
    # the console's own routes take B's session; every other route B's API key
    credential_of = {f"{o.method} {o.path}": b_owner.headers if o.auth == "session" else
                     {"Authorization": f"Bearer {b_key}"} for o in OPERATIONS}

    declared = set()
    for operation in OPERATIONS:
        for where, model in (("body", operation.body), ("query", operation.query)):
            for field in (model.model_fields if model else {}):
                if (field.endswith("_id") or field == "model") and f"{where}.{field}" not in NOT_OBJECT_FIELDS:
                    declared.add(f"{operation.method} {operation.path} {where}.{field}")
    assert declared == set(IDS_IN_BODIES_AND_QUERIES), "decide what another tenant gets for: " \
        f"{declared ^ set(IDS_IN_BODIES_AND_QUERIES)}"

    for case, expected in IDS_IN_BODIES_AND_QUERIES.items():
        method, path, target = case.split(" ")
        where, field = target.split(".")
        url = path.format(**b_paths)
        headers = dict(credential_of[f"{method} {path}"])
        if where == "query":
            status, body = await api.call(method, url, headers=headers, params={field: a_ids[field]})
        else:
            status, body = await api.call(method, url, headers=headers,
                                          json={**bodies[f"{method} {path}"], field: a_ids[field]})
        assert status == expected, f"{case}: {status} {body}"
        if expected >= 400:
            assert set(body) == {"error"}, body
        else:
            assert body["data"] == [], f"{case}: {body}"
    # nothing of A's changed hands: B's chatbots kept their avatar, A's avatar shows only A's
    status, b_avatar_of_bot = await api.call("GET", f"/api/v1/chatbots/{b_bot['id']}/avatar", key=b_key)
    assert b_avatar_of_bot["default"] is True
    status, listed = await api.call("GET", "/api/v1/chatbots", key=b_key)
    assert [c["name"] for c in listed["data"]] == ["B's bot"]  # the refused create left nothing behind
    status, a_avatar = await api.call("GET", f"/api/v1/avatars/{avatars['a']['id']}", key=a_key)
    assert a_avatar["used_by_chatbots"] == [] and a_avatar["chatbot_animation_maps"] == {}
    # the widget's own id in a body: a returning visitor of another tenant is a new visitor here
    status, started = await api.call("POST", f"/api/widget/v1/{b_bot['embed_id']}/conversations",
                                     json={"visitor_id": a_conv["visitor_id"]})
    assert status == 201 and started["visitor_id"] != a_conv["visitor_id"]


@pytest.mark.parametrize("credential", ["api_key", "session"])
def test_schemathesis_finds_no_server_error_or_schema_violation(stack, tmp_path, credential):
    """Thousands of generated requests over the OpenAPI document (the SSE stream excepted: it
    never ends by design), once with a tenant's API key and once as its owner's console session
    (the cookie and the CSRF token). The session run leaves out what would end or demote its
    own session halfway (logout, a password change, removing or demoting users, deleting the
    tenant): the key run and test_console_auth.py cover those. It also leaves out the check that
    schema-valid bodies are accepted: bodies are validated the same whoever sends them, and the
    key run holds that. Bounded so make test stays quick."""
    import asyncio

    from tests.support.stack import Api

    async def credentials() -> list[str]:
        async with aiohttp.ClientSession() as http:
            api = Api(http, stack.gateway)
            tenant, owner = await api.owner_session(stack.admin_key, "fuzz")
            await api.chatbot(tenant["api_key"]["key"], name="fuzz target")
        if credential == "api_key":
            return ["-H", f"Authorization: Bearer {tenant['api_key']['key']}"]
        # schemathesis holds the cookie as the document's `session` scheme (so it knows what
        # leaving it out means); the CSRF token goes with every request
        config.write_text(config.read_text() + f'\n[auth.openapi.session]\napi_key = "{owner.token}"\n')
        return ["-H", f"X-CSRF-Token: {owner.info['csrf_token']}"]

    config = tmp_path / "schemathesis.toml"
    config.write_text((ROOT / "tests" / "e2e" / "schemathesis.toml").read_text())
    headers = asyncio.run(credentials())
    excluded = "stream$" if credential == "api_key" else "stream$|/auth/logout$|/auth/password$|/users/|/tenant$"
    skipped_checks = [] if credential == "api_key" else ["--exclude-checks", "positive_data_acceptance"]
    examples = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "60")
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "schemathesis") if (ROOT / ".venv" / "bin" / "schemathesis").exists()
         else "schemathesis", "--config-file", str(config), "run",
         f"{stack.gateway}/api/v1/openapi.json", *headers,
         "--checks", "all", *skipped_checks, "--max-examples", examples, "--workers", "2", "--seed", "20261123",
         "--exclude-path-regex", excluded, "--report", "junit", "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    summary = proc.stdout[-3000:]
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / f"schemathesis-{credential}.txt").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, summary
    generated = int(__import__("re").search(r"(\d+) generated", summary).group(1))
    assert generated >= 2000, summary


async def test_large_deep_malformed_or_oddly_encoded_json_gets_a_4xx(api, stack):
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    headers = {"Content-Type": "application/json"}
    cases = [
        (b"[" * 100 + b"]" * 100, 400),                                     # deep
        (b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),            # deeper than the parser goes
        (b'{"name": "' + b"x" * 400_000 + b'"}', 413),                      # large
        (b'{"name": "bot", ', 400),                                          # truncated
        (b'{"name": "\\ud800"}', 400),                                       # a lone surrogate
        (b'{"name": "a\\u0000b"}', 400),                                     # NUL
        (b"\xff\xfe{}", 400),                                                 # not UTF-8
        (b'{"name": 12}', 422),                                              # wrong type, no coercion
        (b'{"name": "x", "ai": {"temperature": "0.2"}}', 422),
        (b'"just a string"', 422),
    ]
    for raw, expected in cases:
        status, body = await api.call("POST", "/api/v1/chatbots", key=key, data=raw, headers=headers)
        assert status == expected and "error" in body, (raw[:40], status, body)
    status, body = await api.call("POST", "/api/v1/chatbots", key=key, data=b'{"name": "x"}',
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    # unusual but valid text goes in and comes out exactly
    name = "Zoë 🤖 \u202eRTL\u202c zero\u200bwidth 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    bot = await api.chatbot(key, name=name)
    status, got = await api.call("GET", f"/api/v1/chatbots/{bot['id']}", key=key)
    assert got["name"] == name
    status, listed = await api.call("GET", "/api/v1/chatbots", key=key)
    assert [b["name"] for b in listed["data"]] == [name]


async def test_the_admin_finds_tenants_by_name_newest_first_page_by_page(api, stack):
    """However many tenants the platform has, the admin finds a new one: newest first, by name."""
    tag = uuid.uuid4().hex[:8]
    made = [(await api.tenant(stack.admin_key, f"Findme {tag} {i}"))["tenant"]["id"] for i in range(3)]
    await api.tenant(stack.admin_key, f"Other {tag}")
    status, page = await api.call("GET", "/api/v1/admin/tenants", key=stack.admin_key,
                                  params={"q": f"findme {tag}", "order": "newest", "limit": 2})
    assert status == 200, page
    assert [t["id"] for t in page["data"]] == made[::-1][:2] and page["next_cursor"]
    status, rest = await api.call("GET", "/api/v1/admin/tenants", key=stack.admin_key,
                                  params={"q": f"findme {tag}", "order": "newest", "limit": 2,
                                          "cursor": page["next_cursor"]})
    assert [t["id"] for t in rest["data"]] == [made[0]] and rest["next_cursor"] is None
    # LIKE's wildcards are plain characters in a search
    status, none = await api.call("GET", "/api/v1/admin/tenants", key=stack.admin_key, params={"q": "%_%"})
    assert status == 200 and none["data"] == []
    status, body = await api.call("GET", "/api/v1/admin/tenants", key=stack.admin_key, params={"order": "sideways"})
    assert status == 422 and body["error"]["code"] == "validation_error"
