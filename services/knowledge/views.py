"""Internal HTTP API of the knowledge service.

Tenant routes live under ``/internal/tenants/{tenant_id}/chatbots/{chatbot_id}/...``: the
gateway authenticates the tenant, checks the chatbot is theirs and forwards here. The ai
service calls ``POST /internal/search``.
"""
from __future__ import annotations

import uuid
from typing import Annotated, Literal

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, Field

from common.errors import parse_uuid
from common.web import DEPS, ApiError, json_response, read_json
from services.knowledge import crawl, repository as repo, service
from services.knowledge.service import KnowledgeDeps

PREFIX = "/internal/tenants/{tenant_id}/chatbots/{chatbot_id}"
routes = web.RouteTableDef()
STATUSES = ("queued", "processing", "indexed", "failed")


class UrlIn(BaseModel):
    url: str = Field(min_length=8, max_length=2048)
    title: str | None = Field(None, max_length=300)


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=5_000_000)
    title: str | None = Field(None, max_length=300)
    format: Literal["text", "markdown", "html"] = "text"


class SearchIn(BaseModel):
    # a visitor's message may be long; search reads its first MAX_QUERY_CHARS
    query: str = Field(min_length=1, max_length=8000)
    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=-1, le=1)
    # the visitor's previous turns, oldest first: a follow-up is also searched in context
    context: list[Annotated[str, Field(max_length=8000)]] = Field(default_factory=list, max_length=4)
    # one side alone, to see what each contributes (the console's search box, the ranking test)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class InternalSearchIn(SearchIn):
    tenant_id: uuid.UUID
    chatbot_id: uuid.UUID


class SettingsIn(BaseModel):
    chunk_size: int | None = Field(None, ge=50, le=1000)
    chunk_overlap: int | None = Field(None, ge=0, le=500)
    embedding_provider: Literal["local", "openai"] | None = None
    embedding_model: str | None = Field(None, max_length=100)
    embedding_dim: int | None = Field(None, ge=16, le=4096)
    text_search_config: Literal["simple", "english", "german", "french", "spanish", "italian", "portuguese",
                                "dutch", "russian"] | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    score_threshold: float | None = Field(None, ge=-1, le=1)


_FORMAT_TYPES = {"text": "text/plain", "markdown": "text/markdown", "html": "text/html"}


def _max_documents(request: web.Request) -> int | None:
    """The plan's limit, passed by the gateway (which owns plans) on every route that adds
    documents; knowledge enforces it in the insert transaction."""
    raw = request.query.get("max_documents")
    if raw is None:
        return None
    try:
        return max(int(raw), 0)
    except ValueError:
        raise ApiError(400, "bad_request", "max_documents must be an integer") from None


def _ids(request: web.Request) -> tuple[KnowledgeDeps, uuid.UUID, uuid.UUID]:
    return (request.app[DEPS], parse_uuid(request.match_info["tenant_id"], "tenant"),
            parse_uuid(request.match_info["chatbot_id"], "chatbot"))


def document_out(row) -> dict:
    total, embedded = row["chunks_total"], row["chunks_embedded"]
    if row["status"] == "indexed":
        percent = 100
    elif row["status"] == "processing" and total:
        percent = int(90 * embedded / total)  # the last 10 % is storing the chunks
    else:
        percent = 0
    return {"id": row["id"], "source": row["source"], "title": row["title"], "url": row["url"],
            "filename": row["filename"], "content_type": row["content_type"], "size_bytes": row["size_bytes"],
            "status": row["status"], "reason": row["reason"],
            "progress": {"chunks_total": total, "chunks_embedded": embedded, "percent": percent},
            "chunks": row["chunk_count"], "tokens": row["token_count"], "crawl_id": row["crawl_id"],
            "created_at": row["created_at"], "updated_at": row["updated_at"], "indexed_at": row["indexed_at"]}


def settings_out(kb) -> dict:
    return {name: (kb["ts_config"] if name == "text_search_config" else kb[name]) for name in repo.KB_SETTINGS} | {
        "knowledge_version": kb["knowledge_version"], "last_sync_at": kb["last_sync_at"]}


async def _upload(request: web.Request, max_bytes: int) -> tuple[bytes, str | None, str | None, str | None]:
    """(bytes, filename, content type, title) of a multipart upload with a ``file`` part."""
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", "upload the document as multipart/form-data (field 'file')")
    if request.content_length is not None and request.content_length > max_bytes + 64 * 1024:
        raise ApiError(413, "payload_too_large", f"documents are limited to {max_bytes} bytes")
    raw = filename = content_type = title = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if part.name == "file":
                data = bytearray()
                while piece := await part.read_chunk(256 * 1024):
                    data.extend(piece)
                    if len(data) > max_bytes:
                        raise ApiError(413, "payload_too_large", f"documents are limited to {max_bytes} bytes")
                raw, filename = bytes(data), part.filename
                content_type = part.headers.get("Content-Type")
            elif part.name == "title":
                title = (await part.text())[:300].strip() or None
    except (ValueError, AssertionError, HttpProcessingError, KeyError, UnicodeDecodeError) as exc:
        # aiohttp's multipart parser on a malformed body (no boundary, broken framing...)
        raise ApiError(400, "bad_multipart", "the multipart body is malformed", str(exc)[:200]) from None
    if raw is None:
        raise ApiError(422, "validation_error", "the multipart body needs a 'file' part")
    return raw, filename, content_type, title


@routes.post(PREFIX + "/documents")
async def upload_document(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    raw, filename, content_type, title = await _upload(request, deps.settings.max_upload_bytes)
    document = await service.add_document(deps, tenant_id, chatbot_id, raw=raw, filename=filename,
                                          content_type=content_type, title=title,
                                          max_documents=_max_documents(request))
    return json_response(document_out(document), status=202)


@routes.post(PREFIX + "/documents/text")
async def add_text(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    body = await read_json(request, TextIn, max_bytes=deps.settings.max_upload_bytes)
    document = await service.add_document(deps, tenant_id, chatbot_id, raw=body.text.encode(), filename=None,
                                          content_type=_FORMAT_TYPES[body.format], title=body.title, source="text",
                                          max_documents=_max_documents(request))
    return json_response(document_out(document), status=202)


@routes.post(PREFIX + "/documents/url")
async def add_url(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    body = await read_json(request, UrlIn)
    if not body.url.lower().startswith(("http://", "https://")):
        raise ApiError(422, "validation_error", "only http and https URLs can be added")
    document = await service.add_url(deps, tenant_id, chatbot_id, body.url, body.title,
                                     max_documents=_max_documents(request))
    return json_response(document_out(document), status=202)


@routes.get(PREFIX + "/documents")
async def list_documents(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ApiError(422, "validation_error", f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = min(max(int(request.query.get("limit", 50)), 1), 200)
        offset = max(int(request.query.get("offset", 0)), 0)
    except ValueError:
        raise ApiError(422, "validation_error", "limit and offset must be integers") from None
    async with deps.pool.acquire() as conn:
        await service.knowledge_base(conn, tenant_id, chatbot_id)
        rows = await repo.list_documents(conn, chatbot_id, status=status, limit=limit, offset=offset)
    return json_response({"data": [document_out(r) for r in rows], "limit": limit, "offset": offset})


@routes.get(PREFIX + "/documents/{document_id}")
async def get_document(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    document = await service.get_document(deps, tenant_id, chatbot_id,
                                          parse_uuid(request.match_info["document_id"], "document"))
    return json_response(document_out(document))


@routes.post(PREFIX + "/documents/{document_id}/resync")
async def resync_document(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    document = await service.resync(deps, tenant_id, chatbot_id, parse_uuid(request.match_info["document_id"], "document"))
    return json_response(document_out(document), status=202)


@routes.put(PREFIX + "/documents/{document_id}")
async def replace_document(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    document_id = parse_uuid(request.match_info["document_id"], "document")
    raw, filename, content_type, title = await _upload(request, deps.settings.max_upload_bytes)
    document = await service.replace(deps, tenant_id, chatbot_id, document_id, raw=raw, filename=filename,
                                     content_type=content_type, title=title)
    return json_response(document_out(document), status=202)


@routes.delete(PREFIX + "/documents/{document_id}")
async def delete_document(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    version = await service.delete(deps, tenant_id, chatbot_id, parse_uuid(request.match_info["document_id"], "document"))
    return json_response({"deleted": True, "knowledge_version": version})


@routes.post(PREFIX + "/crawls")
async def start_crawl(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    options = await read_json(request, crawl.CrawlOptions)
    row = await crawl.start_crawl(deps, tenant_id, chatbot_id, options, max_documents=_max_documents(request))
    return json_response(dict(row), status=202)


@routes.get(PREFIX + "/crawls")
async def list_crawls(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    async with deps.pool.acquire() as conn:
        await service.knowledge_base(conn, tenant_id, chatbot_id)
        rows = await repo.list_crawls(conn, chatbot_id)
    return json_response({"data": [dict(r) for r in rows]})


@routes.get(PREFIX + "/crawls/{crawl_id}")
async def get_crawl(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    async with deps.pool.acquire() as conn:
        await service.knowledge_base(conn, tenant_id, chatbot_id)
        row = await repo.get_crawl(conn, chatbot_id, parse_uuid(request.match_info["crawl_id"], "crawl"))
    if row is None:
        raise ApiError(404, "not_found", "no such crawl")
    return json_response(dict(row))


@routes.post(PREFIX + "/search")
async def search(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    body = await read_json(request, SearchIn)
    results, version = await service.search(deps, tenant_id, chatbot_id, body.query, top_k=body.top_k,
                                            score_threshold=body.score_threshold, context=body.context,
                                            mode=body.mode)
    return json_response({"data": [r.as_dict() for r in results], "knowledge_version": version})


@routes.get(PREFIX + "/stats")
async def stats(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    return json_response(await service.stats(deps, tenant_id, chatbot_id))


@routes.get(PREFIX + "/settings")
async def get_settings(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    async with deps.pool.acquire() as conn:
        kb = await service.knowledge_base(conn, tenant_id, chatbot_id)
    return json_response(settings_out(kb))


@routes.patch(PREFIX + "/settings")
async def update_settings(request: web.Request) -> web.Response:
    deps, tenant_id, chatbot_id = _ids(request)
    body = await read_json(request, SettingsIn)
    kb, reingest = await service.update_settings(deps, tenant_id, chatbot_id, body.model_dump(exclude_none=True))
    return json_response({**settings_out(kb), "documents_requeued": reingest})


@routes.post("/internal/search")
async def internal_search(request: web.Request) -> web.Response:
    """For the ai service: the best passages of one chatbot, with citations."""
    body = await read_json(request, InternalSearchIn)
    results, version = await service.search(request.app[DEPS], body.tenant_id, body.chatbot_id, body.query,
                                            top_k=body.top_k, score_threshold=body.score_threshold,
                                            context=body.context, mode=body.mode)
    return json_response({"data": [r.as_dict() for r in results], "knowledge_version": version})
