"""Crawling a local test site (aiohttp on a random port), robots.txt, limits and SSRF guards."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp import web

from services.knowledge.app import create_app
from tests.integration.knowledge.conftest import KnowledgeClient, wait_for
from tests.integration.knowledge.samples import make_html

PAGES = {
    "/": ("Welcome", "<p>Acme makes garden tools for small gardens.</p>",
          ["/docs/a", "/docs/b", "/private/secret", "/blog/post", "http://example.invalid/elsewhere"]),
    "/docs/a": ("Pruning shears", "<p>The Acme pruning shears cut branches up to 25 millimetres thick.</p>",
                ["/docs/c", "/"]),
    "/docs/b": ("Hedge trimmer", "<p>The cordless hedge trimmer runs for forty minutes per charge.</p>", []),
    "/docs/c": ("Lawn mower", "<p>Sharpen the lawn mower blade once every season.</p>", ["/docs/d"]),
    "/docs/d": ("Too deep", "<p>This page is deeper than the crawl goes.</p>", []),
    "/private/secret": ("Secret", "<p>The robots file forbids this page.</p>", []),
    "/blog/post": ("Blog", "<p>An excluded blog post about tomatoes.</p>", []),
}
SITEMAP = """<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{base}/docs/a</loc></url><url><loc>{base}/docs/b</loc></url><url><loc>{base}/blog/post</loc></url>
</urlset>"""


@pytest.fixture
async def site(aiohttp_server):
    hits: list[str] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nDisallow: /private\n", content_type="text/plain")
        if request.path == "/sitemap.xml":
            base = f"http://{request.host}"
            return web.Response(text=SITEMAP.format(base=base), content_type="application/xml")
        if request.path == "/to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if request.path == "/loop":
            raise web.HTTPFound("/loop")
        if request.path == "/huge":
            return web.Response(text="<html><body>" + "x" * 50_000 + "</body></html>", content_type="text/html")
        if request.path == "/slow":
            await asyncio.sleep(5)  # the server side of a timeout; the test waits by polling
            return web.Response(text="late", content_type="text/plain")
        if request.path == "/image.png":
            return web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(100), content_type="image/png")
        if request.path not in PAGES:
            raise web.HTTPNotFound()
        title, body, links = PAGES[request.path]
        return web.Response(text=make_html(title, body, links), content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.hits = hits
    return server


async def _crawl(knowledge: KnowledgeClient, **options) -> dict:
    crawl = await knowledge.call("POST", "/crawls", expect=202, json={"rate_per_second": 10, **options})

    async def finished():
        row = await knowledge.call("GET", f"/crawls/{crawl['id']}")
        return row if row["status"] != "running" else None
    return await wait_for(finished)


async def _indexed_urls(knowledge: KnowledgeClient) -> dict[str, dict]:
    async def all_done():
        docs = (await knowledge.call("GET", "/documents"))["data"]
        return docs if docs and all(d["status"] in ("indexed", "failed") for d in docs) else None
    return {d["url"]: d for d in await wait_for(all_done, timeout=40)}


async def test_crawl_follows_links_within_depth_respecting_robots_and_patterns(knowledge, site):
    base = str(site.make_url("")).rstrip("/")
    crawl = await _crawl(knowledge, start_url=base + "/", max_depth=2, max_pages=20, exclude=["/blog/*"])
    assert crawl["status"] == "completed", crawl
    docs = await _indexed_urls(knowledge)
    assert set(docs) == {base + "/", base + "/docs/a", base + "/docs/b", base + "/docs/c"}
    assert all(d["status"] == "indexed" and d["source"] == "crawl" for d in docs.values())
    assert "/private/secret" not in site.hits and "/blog/post" not in site.hits and "/docs/d" not in site.hits

    hit = (await knowledge.search("how thick a branch can the shears cut"))["data"][0]
    assert hit["url"] == base + "/docs/a" and hit["title"] == "Pruning shears"
    assert "Login" not in hit["snippet"] and "Copyright" not in hit["snippet"]  # main text only

    # a second crawl finds the same pages already known and queues nothing new
    again = await _crawl(knowledge, start_url=base + "/", max_depth=1, max_pages=20, exclude=["/blog/*"])
    assert again["pages_queued"] == 0 and again["pages_skipped"] >= 3


async def test_sitemap_crawl_with_include_patterns_and_page_limit(knowledge, site):
    base = str(site.make_url("")).rstrip("/")
    crawl = await _crawl(knowledge, sitemap_url=base + "/sitemap.xml", include=["/docs/*"], max_pages=5)
    assert crawl["status"] == "completed" and crawl["pages_queued"] == 2, crawl
    assert set(await _indexed_urls(knowledge)) == {base + "/docs/a", base + "/docs/b"}

    limited = KnowledgeClient(knowledge.client, knowledge.tenant_id, uuid.uuid4())
    crawl = await _crawl(limited, start_url=base + "/", max_depth=3, max_pages=2)
    assert crawl["pages_seen"] == 2 and crawl["pages_queued"] == 2


async def test_url_documents_are_fetched_and_unsafe_ones_fail(knowledge, site):
    base = str(site.make_url("")).rstrip("/")
    page = await knowledge.call("POST", "/documents/url", expect=202, json={"url": base + "/docs/b"})
    metadata = await knowledge.call("POST", "/documents/url", expect=202, json={"url": base + "/to-metadata"})
    image = await knowledge.call("POST", "/documents/url", expect=202, json={"url": base + "/image.png"})
    missing = await knowledge.call("POST", "/documents/url", expect=202, json={"url": base + "/nope"})
    await knowledge.call("POST", "/documents/url", expect=409, json={"url": base + "/docs/b"})
    await knowledge.call("POST", "/documents/url", expect=422, json={"url": "file:///etc/passwd"})
    assert (await knowledge.wait_status(page["id"]))["status"] == "indexed"
    assert "private or reserved" in (await knowledge.wait_status(metadata["id"]))["reason"]
    assert "not a supported document type" in (await knowledge.wait_status(image["id"]))["reason"]
    assert "404" in (await knowledge.wait_status(missing["id"]))["reason"]
    # re-sync fetches the page again
    await knowledge.call("POST", f"/documents/{page['id']}/resync", expect=202)
    assert (await knowledge.wait_status(page["id"]))["status"] == "indexed"
    assert site.hits.count("/docs/b") == 2


async def test_without_the_test_allow_list_loopback_is_refused(aiohttp_client, knowledge_settings, embedder, site):
    settings = knowledge_settings.model_copy(update={"fetch_allow_networks": []})
    client = await aiohttp_client(create_app(settings, local_embedder=embedder))
    knowledge = KnowledgeClient(client, uuid.uuid4(), uuid.uuid4())
    port = site.port
    by_ip = await knowledge.call("POST", "/documents/url", expect=202, json={"url": f"http://127.0.0.1:{port}/"})
    by_name = await knowledge.call("POST", "/documents/url", expect=202, json={"url": f"http://localhost:{port}/"})
    for doc in (by_ip, by_name):
        done = await knowledge.wait_status(doc["id"])
        assert done["status"] == "failed" and "private or reserved" in done["reason"], done
    crawl = await _crawl(knowledge, start_url=f"http://localhost:{port}/")
    assert crawl["pages_queued"] == 0 and crawl["status"] == "failed"
    assert "private or reserved" in crawl["reason"]
    assert site.hits == []


async def test_fetch_limits_size_time_and_redirects(aiohttp_client, knowledge_settings, embedder, site):
    settings = knowledge_settings.model_copy(update={"fetch_max_bytes": 10_000, "fetch_timeout_s": 0.5,
                                                     "max_upload_bytes": 5_000})
    knowledge = KnowledgeClient(await aiohttp_client(create_app(settings, local_embedder=embedder)),
                                uuid.uuid4(), uuid.uuid4())
    base = str(site.make_url("")).rstrip("/")
    expected = {"/huge": "larger than 10000 bytes", "/slow": "did not answer", "/loop": "more than 5 redirects"}
    docs = {path: await knowledge.call("POST", "/documents/url", expect=202, json={"url": base + path})
            for path in expected}
    for path, reason in expected.items():
        done = await knowledge.wait_status(docs[path]["id"])
        assert done["status"] == "failed" and reason in done["reason"], done
    too_big = await knowledge.upload("big.txt", b"a" * 6_000, "text/plain", expect=413)
    assert too_big["error"]["code"] == "payload_too_large"
