"""Tenant-facing knowledge routes under /api/v1/chatbots/{chatbot_id}/knowledge.

The gateway authenticates the API key, checks that the chatbot belongs to the tenant, and
forwards the call to the knowledge service's internal API with the tenant and chatbot in the
path. Bodies are forwarded as they came (JSON, or multipart uploads of up to
``MAX_UPLOAD_BYTES``), and the knowledge service's status and JSON body come back unchanged,
so its validation messages reach the tenant as written.
"""
from __future__ import annotations

import uuid
from typing import Literal

import aiohttp
from aiohttp import web
from pydantic import Field, model_validator

from common.http import InternalClient, unreachable
from common.logging import get_contextvars
from common.web import POOL, ApiError, json_body_cap, read_body
from services.gateway import repository
from services.gateway.api import Ctx, Operations
from services.gateway.clients import INTERNAL
from services.gateway.models import NO_NUL, Query, Strict


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


BASE = "/api/v1/chatbots/{chatbot_id}/knowledge"
MAX_UPLOAD_BYTES = 20 * 1024 ** 2
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 1024 ** 2  # multipart framing and the title field
UPLOAD_TIMEOUT_S = 120.0  # 20 MB over a slow mobile link (nginx buffers bodies in front of us)
MAX_TEXT_CHARS = 1_000_000


async def forward_raw(client: InternalClient, method: str, path: str, *, body: bytes | None = None,
                      content_type: str | None = None, params: dict | None = None,
                      timeout: float = 60.0) -> web.Response:
    """Send ``body`` as is (any content type, multipart included) and return the callee's
    response with its status. Like ``InternalClient.request``, a callee that is down or
    failing becomes a 503 so the tenant knows to retry."""
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    ctx = get_contextvars()
    if "correlation_id" in ctx:
        headers["X-Correlation-ID"] = ctx["correlation_id"]
    try:
        async with client.session.request(method, client.base_url + path, data=body, params=params,
                                          headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            payload = await resp.read()
            if resp.status >= 500:
                raise ApiError(503, "unavailable", f"the {client.service} service failed; try again")
            return web.Response(body=payload, status=resp.status,
                                content_type=resp.content_type or "application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable(client.service, exc) from None



URL_PATTERN = r"^https?://[^\s]+$"


class TextIn(Strict):
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, pattern=NO_NUL)
    title: str | None = Field(None, max_length=300, pattern=NO_NUL)
    format: Literal["text", "markdown", "html"] = "text"


class UrlIn(Strict):
    url: str = Field(min_length=8, max_length=2048, pattern=URL_PATTERN)
    title: str | None = Field(None, max_length=300, pattern=NO_NUL)


class CrawlIn(Strict):
    """From a start URL (following links) or a sitemap; give one of them."""
    model_config = Strict.model_config | {"json_schema_extra": {"anyOf": [
        {"required": ["start_url"], "properties": {"start_url": {"type": "string"}}},
        {"required": ["sitemap_url"], "properties": {"sitemap_url": {"type": "string"}}}]}}
    start_url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN)
    sitemap_url: str | None = Field(None, max_length=2048, pattern=URL_PATTERN)
    max_pages: int = Field(50, ge=1, le=1000)
    max_depth: int = Field(2, ge=0, le=10)
    include: list[str] = Field(default_factory=list, max_length=50,
                               description="Path patterns (fnmatch) a page must match, e.g. /docs/*")
    exclude: list[str] = Field(default_factory=list, max_length=50)
    rate_per_second: float = Field(1.0, gt=0, le=10)

    @model_validator(mode="after")
    def _one_source(self):
        if not (self.start_url or self.sitemap_url):
            raise ValueError("give a start_url or a sitemap_url")
        return self


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=2000, pattern=r"^[^\x00]*\S[^\x00]*$")
    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=-1, le=1)


class SettingsIn(Strict):
    chunk_size: int | None = Field(None, ge=50, le=1000, description="Tokens per chunk")
    chunk_overlap: int | None = Field(None, ge=0, le=500)
    embedding_provider: Literal["local", "openai"] | None = None
    embedding_model: str | None = Field(None, max_length=100, pattern=NO_NUL)
    embedding_dim: Literal[384, 1536] | None = None
    text_search_config: Literal["simple", "english", "german", "french", "spanish", "italian", "portuguese",
                                "dutch", "russian"] | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=-1, le=1)


class DocumentQuery(Query):
    status: Literal["queued", "processing", "indexed", "failed"] | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=100_000)


async def _target(ctx: Ctx) -> tuple[InternalClient, str]:
    """The knowledge client and the internal path prefix of the tenant's chatbot."""
    chatbot_id = uuid.UUID(ctx.request.match_info["chatbot_id"])
    async with ctx.request.app[POOL].acquire() as conn:
        chatbot = await repository.get_chatbot(conn, ctx.principal.tenant_id, chatbot_id)
    if chatbot is None:
        raise ApiError(404, "not_found", "no such chatbot")
    return ctx.request.app[INTERNAL]["knowledge"], f"/internal/tenants/{ctx.principal.tenant_id}/chatbots/{chatbot_id}"


async def _plan(ctx: Ctx) -> dict:
    """The plan's document limit, for the knowledge service to enforce in its insert
    transaction: a check here and an insert there would race (503 documents on a plan of 500)."""
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.get_tenant(conn, ctx.principal.tenant_id)
    return {"max_documents": str(tenant["max_documents"])}


async def _proxy(ctx: Ctx, suffix: str = "", *, raw: bool = False, timeout: float = 30.0,
                 params: dict | None = None) -> web.Response:
    client, prefix = await _target(ctx)
    if raw:
        body = await read_body(ctx.request, MAX_BODY_BYTES, timeout_s=UPLOAD_TIMEOUT_S,
                               too_large=f"documents are limited to {MAX_UPLOAD_BYTES} bytes")
        content_type = ctx.request.headers.get("Content-Type")
    elif ctx.body is not None:
        body, content_type = ctx.body.model_dump_json(exclude_none=True).encode(), "application/json"
    else:
        body, content_type = None, None
    return await forward_raw(client, ctx.request.method, prefix + suffix, body=body, content_type=content_type,
                             params=params, timeout=timeout)


def _document(ctx: Ctx) -> str:
    return f"/documents/{ctx.request.match_info['document_id']}"


TAG = "Knowledge"


@op("POST", BASE + "/documents", summary="Upload a document", tag=TAG, raw_body="multipart/form-data",
    status=202, json_object=True, extra_responses={409: "The same file is already there"})
async def upload_document(ctx: Ctx) -> web.Response:
    """Multipart: `file` (text, Markdown, HTML, PDF or DOCX, up to 20 MB) and an optional `title`.
    The document is queued; follow its status (queued, processing, indexed, failed with a reason)."""
    return await _proxy(ctx, "/documents", raw=True, timeout=120.0, params=await _plan(ctx))


@op("POST", BASE + "/documents/text", summary="Add a document from text", tag=TAG, body=TextIn, status=202,
    json_object=True, extra_responses={409: "The same text is already there"},
    max_body=json_body_cap(MAX_TEXT_CHARS))
async def add_text(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, "/documents/text", timeout=120.0, params=await _plan(ctx))


@op("POST", BASE + "/documents/url", summary="Add a web page", tag=TAG, body=UrlIn, status=202, json_object=True,
    extra_responses={409: "This URL is already there"})
async def add_url(ctx: Ctx) -> web.Response:
    """Fetched by the knowledge service: http(s) only, never private or internal addresses."""
    return await _proxy(ctx, "/documents/url", params=await _plan(ctx))


@op("GET", BASE + "/documents", summary="List documents with their status and progress", tag=TAG,
    query=DocumentQuery, json_object=True)
async def list_documents(ctx: Ctx) -> web.Response:
    q: DocumentQuery = ctx.query
    params = {"limit": str(q.limit), "offset": str(q.offset), **({"status": q.status} if q.status else {})}
    return await _proxy(ctx, "/documents", params=params)


@op("GET", BASE + "/documents/{document_id}", summary="A document, its status and progress", tag=TAG,
    json_object=True)
async def get_document(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, _document(ctx))


@op("PUT", BASE + "/documents/{document_id}", summary="Replace a document's file", tag=TAG,
    raw_body="multipart/form-data", status=202, json_object=True)
async def replace_document(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, _document(ctx), raw=True, timeout=120.0)


@op("POST", BASE + "/documents/{document_id}/resync", summary="Fetch and index a document again", tag=TAG,
    status=202, json_object=True)
async def resync_document(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, _document(ctx) + "/resync")


@op("DELETE", BASE + "/documents/{document_id}", summary="Delete a document and its chunks", tag=TAG, status=204)
async def delete_document(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, _document(ctx))


@op("POST", BASE + "/crawls", summary="Crawl a site into the knowledge base", tag=TAG, body=CrawlIn, status=202,
    json_object=True, extra_responses={409: "The tenant already runs as many crawls as it may (too_many_crawls)"})
async def start_crawl(ctx: Ctx) -> web.Response:
    """Respects robots.txt and a per-site rate, bounded in pages and depth, with include and
    exclude path patterns; keeps each page's main text. Takes at most the room left under the
    plan's document limit; a tenant runs two crawls at once."""
    return await _proxy(ctx, "/crawls", params=await _plan(ctx))


@op("GET", BASE + "/crawls", summary="List crawls", tag=TAG, json_object=True)
async def list_crawls(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, "/crawls")


@op("GET", BASE + "/crawls/{crawl_id}", summary="A crawl's progress", tag=TAG, json_object=True)
async def get_crawl(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, f"/crawls/{ctx.request.match_info['crawl_id']}")


@op("POST", BASE + "/search", summary="Search the knowledge base (hybrid: vectors and full text)", tag=TAG,
    body=SearchIn, json_object=True, need="read")
async def search(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, "/search")


@op("GET", BASE + "/stats", summary="Documents, chunks, tokens, last sync", tag=TAG, json_object=True)
async def stats(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, "/stats")


@op("GET", BASE + "/settings", summary="Chunking and embedding settings", tag=TAG, json_object=True)
async def get_settings(ctx: Ctx) -> web.Response:
    return await _proxy(ctx, "/settings")


@op("PATCH", BASE + "/settings", summary="Change chunking and embedding settings", tag=TAG, body=SettingsIn,
    json_object=True, extra_responses={409: "The settings conflict (overlap over half the chunk size, or OpenAI "
                                          "embeddings on a server without an OpenAI key)"})
async def update_settings(ctx: Ctx) -> web.Response:
    """A new embedding model re-embeds the whole knowledge base; vectors are never mixed."""
    return await _proxy(ctx, "/settings")
