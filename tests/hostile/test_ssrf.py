"""Aiming our outbound requests inside: a tenant's provider base URL and the crawler, with
redirects, DNS rebinding and odd spellings of internal addresses.

Names under .test resolve through NETGUARD_TEST_HOSTS (tests/support/stack.py): shop.hostile.test is
the allowed test site on 127.0.0.1, inside.hostile.test is 127.0.0.2 (where ``sites`` keeps a
stand-in for an internal service), metadata.hostile.test is 169.254.169.254, and the rebind
names answer an allowed address first and 127.0.0.2 after. Traffic only ever goes to
loopback; the assertions are that the inside never saw a request and that each attempt ended
with a clear code."""
from __future__ import annotations

import pytest
from aiohttp import web

from tests.e2e.test_chat_turn import wait_until
from tests.hostile.conftest import error_of
from scripts.loopback import Ok, Redirect

pytestmark = pytest.mark.e2e


async def provider_tenant(api, stack):
    tenant = await api.tenant(stack.admin_key, "SSRF Ltd")
    return tenant["api_key"]["key"]


async def reply_of_first_message(api, key: str) -> dict:
    bot = await api.chatbot(key, ai={"provider": "openai", "model": "gpt-4o-mini"})
    conv = await api.conversation(bot["embed_id"])
    assert (await api.say(bot["embed_id"], conv, "When do you open?", "ssrf-1"))[0] == 202

    async def ended():
        replies = [m for m in await api.transcript(bot["embed_id"], conv) if m["role"] == "assistant"]
        return replies[0] if replies and replies[0]["status"] in ("completed", "failed") else None
    return await wait_until(ended, timeout=60, what="the reply")


@pytest.mark.parametrize("base_url", [
    "http://inside.hostile.test:{port}/v1", "http://metadata.hostile.test/latest/meta-data",
    "http://127.0.0.2:{port}/v1", "http://[::1]:{port}/v1", "http://[::ffff:127.0.0.2]:{port}/v1",
    "http://[64:ff9b::7f00:2]:{port}/v1", "http://[2002:7f00:2::1]:{port}/v1", "http://2130706434:{port}/v1",
    "http://0x7f000002:{port}/v1", "http://169.254.169.254/latest/api/token"])
async def test_a_provider_base_url_inside_is_refused_when_stored(api, stack, sites, base_url):
    key = await provider_tenant(api, stack)
    status, body = await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                                  json={"api_key": "sk-test-0000000000", "base_url": base_url.format(port=sites.port)})
    assert status == 422 and error_of(body)["code"] == "unsafe_base_url", body
    assert sites.inside_hits == []


async def test_a_provider_name_that_rebinds_inside_after_it_was_stored_is_refused_at_connect(api, stack, sites,
                                                                                           watch):
    key = await provider_tenant(api, stack)
    # checked when stored: it answers a public address then (nothing is sent there)
    status, stored = await api.call("PUT", "/api/v1/provider-keys/openai", key=key, json={
        "api_key": "sk-test-0000000000", "base_url": f"http://rebind-provider.hostile.test:{sites.port}/v1"})
    assert status == 200, stored
    async with watch("provider:dns-rebinding") as measured:
        reply = await reply_of_first_message(api, key)
    # the name now answers 127.0.0.2: the connection is refused there, before any byte is sent
    assert reply["status"] == "failed" and reply["error_code"] == "provider_address_blocked", reply
    assert "127.0.0.2" not in reply["error_message"] and sites.inside_hits == []
    measured.check()


async def test_a_provider_redirect_is_not_followed(api, stack, sites, openai_fake):
    # an allowed provider (127.0.0.1) that answers with a 307 to the inside, which keeps the
    # POST and its body (the prompt and the tenant's key) if followed
    redirecting_provider = openai_fake
    redirecting_provider.script = [Redirect(f"http://127.0.0.2:{sites.port}/v1/chat/completions")]
    key = await provider_tenant(api, stack)
    status, _ = await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                               json={"api_key": "sk-test-0000000000", "base_url": redirecting_provider.url + "/v1"})
    assert status == 200
    reply = await reply_of_first_message(api, key)
    assert reply["status"] == "failed" and reply["error_code"] == "provider_redirected", reply
    assert len(redirecting_provider.requests) == 1 and sites.inside_hits == []
    # the visitor reads a plain sentence, not the provider's answer or an address
    assert reply["error_message"] == "Sorry, the assistant could not answer just now. Please try again."


async def test_a_provider_status_is_no_oracle_for_what_is_inside(api, stack, sites):
    """Every inside address gets the same refusal, open port or closed: nothing to map."""
    key = await provider_tenant(api, stack)
    answers = set()
    for url in (f"http://127.0.0.2:{sites.port}/v1", "http://127.0.0.2:9/v1"):
        status, body = await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                                      json={"api_key": "sk-test-0000000000", "base_url": url})
        answers.add((status, body["error"]["code"], body["error"]["message"].replace(str(sites.port), "9")))
    assert len(answers) == 1 and sites.inside_hits == []


async def crawl(api, key: str, chatbot_id: str, body: dict) -> dict:
    status, started = await api.call("POST", f"/api/v1/chatbots/{chatbot_id}/knowledge/crawls", key=key, json=body)
    assert status == 202, started

    async def finished():
        _, row = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/knowledge/crawls/{started['id']}", key=key)
        return row if row["status"] != "running" else None
    return await wait_until(finished, timeout=90, what="the crawl")


async def url_document(api, key: str, chatbot_id: str, url: str) -> dict:
    status, document = await api.call("POST", f"/api/v1/chatbots/{chatbot_id}/knowledge/documents/url", key=key,
                                      json={"url": url})
    assert status == 202, document

    async def settled():
        _, row = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/knowledge/documents/{document['id']}", key=key)
        return row if row["status"] in ("indexed", "failed") else None
    return await wait_until(settled, timeout=90, what="the document")


@pytest.mark.parametrize("target", ["http://127.0.0.2:{port}/secret", "http://inside.hostile.test:{port}/secret",
                                    "http://metadata.hostile.test/latest/meta-data/", "http://[::1]:{port}/secret"])
async def test_a_page_that_redirects_inside_fails_with_its_reason(api, stack, sites, target):
    async def bounce(request):
        raise web.HTTPFound(location=target.format(port=sites.port))
    sites.pages["/bounce"] = bounce
    tenant = await api.tenant(stack.admin_key, "Crawler SSRF Ltd")
    key = tenant["api_key"]["key"]
    bot = await api.chatbot(key)
    document = await url_document(api, key, bot["id"], sites.url("/bounce"))
    assert document["status"] == "failed" and "private or reserved address" in document["reason"], document
    assert sites.hits == ["/bounce"] and sites.inside_hits == []


async def test_a_crawled_name_that_rebinds_inside_is_refused_at_the_next_connection(api, stack, sites, watch):
    async def robots(request):
        response = web.Response(text="User-agent: *\nAllow: /\n", content_type="text/plain")
        response.force_close()  # the next request needs a new connection, and so a new lookup
        return response

    async def page(request):
        return web.Response(text="<html><body><p>Welcome to the shop.</p></body></html>", content_type="text/html")
    sites.pages["/robots.txt"] = robots
    sites.pages["/"] = page
    tenant = await api.tenant(stack.admin_key, "Rebinding Ltd")
    key = tenant["api_key"]["key"]
    bot = await api.chatbot(key)
    async with watch("crawl:dns-rebinding") as measured:
        row = await crawl(api, key, bot["id"], {"start_url": f"http://rebind-crawl.hostile.test:{sites.port}/",
                                                "max_pages": 3})
    # robots.txt came from the site (the first answer); the page lookup answered 127.0.0.2
    assert sites.hits == ["/robots.txt"] and sites.inside_hits == []
    assert row["pages_queued"] == 0 and row["pages_skipped"] >= 1, row
    measured.check()


async def test_the_allowed_test_site_is_crawled_normally(api, stack, sites):
    """The control: the same crawl to a name that stays on the allowed address indexes the page."""
    async def page(request):
        return web.Response(text="<html><body><h1>Shop</h1><p>We sell cargo bikes and repair e-bikes every "
                                 "weekday from nine to six.</p></body></html>", content_type="text/html")
    sites.pages["/"] = page
    tenant = await api.tenant(stack.admin_key, "Honest Crawl Ltd")
    key = tenant["api_key"]["key"]
    bot = await api.chatbot(key)
    row = await crawl(api, key, bot["id"], {"start_url": sites.url("/"), "max_pages": 1})
    assert row["status"] == "completed" and row["pages_queued"] == 1, row
    assert "/" in sites.hits and sites.inside_hits == []


async def test_an_allowed_provider_still_answers(api, stack, openai_fake):
    """The control for the provider: the guarded transport reaches an allowed address."""
    fake = openai_fake
    fake.script = [Ok(["We open ", "at nine."])]
    key = await provider_tenant(api, stack)
    await api.call("PUT", "/api/v1/provider-keys/openai", key=key,
                   json={"api_key": "sk-test-0000000000", "base_url": f"http://shop.hostile.test:{fake.server.port}/v1"})
    reply = await reply_of_first_message(api, key)
    assert reply["status"] == "completed" and reply["text"] == "We open at nine.", reply
