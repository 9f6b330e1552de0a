"""Files built to be expensive to parse: documents, sitemaps, pages and .glb models.

Each one ends as a document ``failed`` with its reason, a crawl ``failed`` with its reason or a
4xx, while the services' memory stays flat and another tenant keeps being served."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from tests.e2e.test_chat_turn import wait_until
from tests.hostile import inputs
from tests.hostile.conftest import error_of
from tests.unit.avatar.avatar_samples import default_glb, with_node_chain, with_zero_accessor

pytestmark = pytest.mark.e2e


async def new_bot(api, stack) -> tuple[str, str]:
    tenant = await api.tenant(stack.admin_key, "Attacker Ltd")
    key = tenant["api_key"]["key"]
    return key, (await api.chatbot(key, name="Attacker bot"))["id"]


async def upload(api, key: str, chatbot_id: str, raw: bytes, filename: str, content_type: str):
    form = aiohttp.FormData()
    form.add_field("file", raw, filename=filename, content_type=content_type)
    return await api.call("POST", f"/api/v1/chatbots/{chatbot_id}/knowledge/documents", key=key, data=form)


async def settled(api, key: str, chatbot_id: str, document_id: str, timeout: float = 240) -> dict:
    async def done():
        status, document = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/knowledge/documents/{document_id}",
                                          key=key)
        return document if status == 200 and document["status"] in ("indexed", "failed") else None
    return await wait_until(done, timeout=timeout, what=f"document {document_id} settling")


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
DOCUMENTS = [
    ("zip-bomb-docx", inputs.zip_bomb_docx, "bomb.docx", DOCX, "expands to 300 MB when unzipped"),
    ("dense-docx", inputs.dense_docx, "dense.docx", DOCX, "could not be read"),
    ("pdf-100k-pages", inputs.pdf_with_pages, "pages.pdf", "application/pdf", "more than 2000 pages"),
    ("pdf-deep-page-tree", inputs.pdf_with_deep_page_tree, "deep.pdf", "application/pdf", "could not be read"),
]


@pytest.mark.parametrize("name, make, filename, content_type, reason", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
async def test_a_hostile_document_fails_with_its_reason(api, stack, watch, name, make, filename, content_type,
                                                         reason):
    key, chatbot_id = await new_bot(api, stack)
    raw = make()
    assert len(raw) < 5 * 1024 ** 2  # small on the wire
    async with watch(f"document:{name}") as measured:
        status, document = await upload(api, key, chatbot_id, raw, filename, content_type)
        assert status == 202, document
        final = await settled(api, key, chatbot_id, document["id"])
    assert final["status"] == "failed" and reason in final["reason"], final
    assert final["chunks"] == 0
    measured.check()


async def test_a_gzip_bomb_sitemap_fails_the_crawl_with_its_reason(api, stack, watch, sites):
    bomb = inputs.gzip_bomb(256 * 1024 ** 2, filler=b"<url><loc>http://x/</loc></url>")

    async def sitemap(request):
        return web.Response(body=bomb, content_type="application/gzip")
    sites.pages["/sitemap.xml.gz"] = sitemap
    key, chatbot_id = await new_bot(api, stack)
    async with watch("crawl:gzip-bomb-sitemap") as measured:
        status, crawl = await api.call("POST", f"/api/v1/chatbots/{chatbot_id}/knowledge/crawls", key=key,
                                       json={"sitemap_url": sites.url("/sitemap.xml.gz"), "max_pages": 5})
        assert status == 202, crawl

        async def finished():
            _, row = await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/knowledge/crawls/{crawl['id']}", key=key)
            return row if row["status"] != "running" else None
        row = await wait_until(finished, timeout=120, what="the crawl")
    assert row["status"] == "failed" and "expands to more than 50 MB" in row["reason"], row
    assert sites.hits == ["/sitemap.xml.gz"]
    measured.check()


async def test_a_page_sent_as_a_gzip_bomb_fails_the_document(api, stack, watch, sites):
    bomb = inputs.gzip_bomb(256 * 1024 ** 2, filler=b"<p>spam</p>")

    async def page(request):
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
    sites.pages["/bomb.html"] = page
    key, chatbot_id = await new_bot(api, stack)
    async with watch("url:content-encoding-gzip-bomb") as measured:
        status, document = await api.call("POST", f"/api/v1/chatbots/{chatbot_id}/knowledge/documents/url", key=key,
                                          json={"url": sites.url("/bomb.html")})
        assert status == 202, document
        final = await settled(api, key, chatbot_id, document["id"])
    assert final["status"] == "failed" and "once decompressed" in final["reason"], final
    measured.check()


MODELS = [
    ("glb-100k-node-chain", lambda: with_node_chain(default_glb(), 100_000), "too_many_nodes"),
    ("glb-accessor-count-2e31", lambda: with_zero_accessor(default_glb(), 2 ** 31), "too_large_accessor"),
]


@pytest.mark.parametrize("name, make, code", MODELS, ids=[m[0] for m in MODELS])
async def test_a_hostile_model_is_refused_quickly_while_models_keep_loading(api, stack, watch, name, make, code):
    key, _ = await new_bot(api, stack)
    data = make()
    timings = []

    async def attempt():
        form = aiohttp.FormData()
        form.add_field("file", data, filename="hostile.glb", content_type="model/gltf-binary")
        started = time.perf_counter()
        status, body = await api.call("POST", "/api/v1/avatars", key=key, data=form)
        timings.append(time.perf_counter() - started)
        return status, body

    async with watch(f"avatar:{name}") as measured:
        # the finding: about six uploads at once stalled avatar loading for every tenant
        results = await asyncio.gather(*(attempt() for _ in range(12)))
    for status, body in results:
        assert status == 422 and error_of(body)["code"] == code, body
    assert max(timings) < 30, timings
    status, listed = await api.call("GET", "/api/v1/avatars", key=key)
    assert [a["default"] for a in listed["data"]] == [True]  # nothing was stored
    measured.check()
