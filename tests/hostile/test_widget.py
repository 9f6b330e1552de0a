"""The widget's public side: framing a chatbot under another's policy, and visitor tokens kept
past their time or after a tenant revoked them."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import aiohttp
import asyncpg
import pytest
from yarl import URL

from tests.e2e.test_chat_turn import wait_until
from tests.hostile.conftest import error_of
from tests.support.stack import ROOT

pytestmark = pytest.mark.e2e


async def frame(site: str, query: str) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as http:
        # encoded=True: the query goes out exactly as written (%5F is not turned into _)
        async with http.get(URL(f"{site}/widget/?{query}", encoded=True)) as resp:
            return resp.status, dict(resp.headers), await resp.text()


async def test_the_encoded_embed_id_framing_trick_is_refused(api, stack, site):
    tenant = await api.tenant(stack.admin_key, "Framing Ltd")
    key = tenant["api_key"]["key"]
    victim = await api.chatbot(key, name="Locked", allowed_origins=["https://victim-shop.example"])
    open_bot = await api.chatbot(key, name="Open")  # no origins: any site may frame it
    locked, anyone = victim["embed_id"], open_bot["embed_id"]

    status, headers, _ = await frame(site, f"embed_id={locked}")
    assert status == 200 and "frame-ancestors 'self' https://victim-shop.example;" in headers["Content-Security-Policy"]
    status, headers, _ = await frame(site, f"embed_id={anyone}")
    assert status == 200 and "frame-ancestors *;" in headers["Content-Security-Policy"]

    # nginx read the plain one (undecoded, any case), the frame the decoded first one
    for trick in (f"embed%5Fid={locked}&embed_id={anyone}", f"embed_id={anyone}&embed%5fid={locked}",
                  f"EMBED_ID={anyone}&embed_id={locked}", f"embed_id={locked}&Embed_Id={anyone}",
                  f"embed_id={anyone}&embed_id={locked}", f"embed%5Fid={locked}",
                  f"embed_id={quote(locked + '&x=1')}", f"embed+id=x&embed_id={anyone}&embed%5Fid={locked}"):
        status, headers, body = await frame(site, trick)
        assert status == 403, (trick, status)
        assert error_of(json.loads(body))["code"] == "ambiguous_embed_id"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # the gateway's answer to a direct caller is the same
    async with api.http.get(URL(f"{api.base}/api/widget/v1/frame-policy?embed%5Fid={locked}&embed_id={anyone}",
                                encoded=True)) as resp:
        assert resp.status == 403 and error_of(await resp.json())["code"] == "ambiguous_embed_id"
    # an unrelated parameter is fine, as embed.js adds host= and greeting=
    status, headers, _ = await frame(site, f"embed_id={locked}&host=https%3A%2F%2Fvictim-shop.example&greeting=Hi")
    assert status == 200 and "https://victim-shop.example" in headers["Content-Security-Policy"]


async def test_tokens_are_kept_out_of_the_access_log(api, stack, site, bot):
    conv = await api.conversation(bot["embed_id"], base=site)
    stream = await api.stream(bot["embed_id"], conv, base=site)
    stream.response.close()
    log = ROOT / "var" / "nginx-test" / "log" / "access.log"

    async def logged():  # nginx writes the line when it sees the stream end
        text = log.read_text()
        return text if f"/conversations/{conv['conversation_id']}/stream" in text else None
    text = await wait_until(logged, what="the stream in the access log")
    assert conv["visitor_token"] not in text and "token=" not in text


async def test_a_revoked_session_stops_every_token_at_once(api, stack, bot):
    embed, key = bot["embed_id"], bot["key"]
    conv = await api.conversation(embed)
    path = f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}"
    status, fresh = await api.call("POST", path + "/token", key=conv["visitor_token"])
    assert status == 200
    other_tenant = await api.tenant(stack.admin_key, "Not the owner")
    status, body = await api.call("DELETE", f"/api/v1/conversations/{conv['conversation_id']}/visitor-session",
                                  key=other_tenant["api_key"]["key"])
    assert status == 404 and error_of(body)["code"] == "not_found"
    status, _ = await api.call("DELETE", f"/api/v1/conversations/{conv['conversation_id']}/visitor-session", key=key)
    assert status == 204
    for token in (conv["visitor_token"], fresh["visitor_token"]):
        for method, suffix, kwargs in (("GET", "/messages", {}), ("POST", "/token", {}),
                                       ("POST", "/messages", {"json": {"text": "hi", "client_message_id": "r1"}}),
                                       ("GET", "/stream", {})):
            status, body = await api.call(method, path + suffix, key=token, **kwargs)
            assert status == 401 and error_of(body)["code"] == "session_revoked", (suffix, body)


async def test_a_session_has_an_absolute_lifetime_however_often_it_is_refreshed(api, stack, bot):
    embed = bot["embed_id"]
    conv = await api.conversation(embed)
    path = f"/api/widget/v1/{embed}/conversations/{conv['conversation_id']}"
    conn = await asyncpg.connect(os.environ["GATEWAY_DATABASE_URL"])
    try:
        # 23 hours in: a refresh works, and its token ends with the session
        await conn.execute("UPDATE visitor_sessions SET started_at = now() - interval '23 hours' "
                           "WHERE conversation_id = $1", conv["conversation_id"])
        status, fresh = await api.call("POST", path + "/token", key=conv["visitor_token"])
        assert status == 200 and 3500 <= fresh["visitor_token_expires_in"] <= 3600, fresh
        # 25 hours in: nothing renews it, not even a token issued a moment ago
        await conn.execute("UPDATE visitor_sessions SET started_at = now() - interval '25 hours' "
                           "WHERE conversation_id = $1", conv["conversation_id"])
    finally:
        await conn.close()
    for token in (conv["visitor_token"], fresh["visitor_token"]):
        status, body = await api.call("POST", path + "/token", key=token)
        assert status == 401 and error_of(body)["code"] == "session_expired", body
        status, body = await api.call("GET", path + "/messages", key=token)
        assert status == 401 and error_of(body)["code"] == "session_expired", body
