"""The avatar service's internal HTTP API, called by the gateway only.

Every tenant route takes ``?tenant_id=``; the gateway sets it from the caller's API key. The
model bytes route does not need it: widgets load models without a key, and an avatar id (a
random UUID) is as hard to guess as one.
"""
from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ConfigDict, Field

from common.logging import get_logger
from common.errors import parse_uuid
from common.web import POOL, SETTINGS, ApiError, json_response, read_json
from services.avatar import repository, service
from services.avatar.service import DEFAULT_AVATAR_ID, DefaultAvatar, Validator
from services.avatar.storage import AvatarStore

log = get_logger(__name__)
STORE = web.AppKey("avatar_store", AvatarStore)
DEFAULT = web.AppKey("default_avatar", DefaultAvatar)
VALIDATOR = web.AppKey("avatar_validator", Validator)
routes = web.RouteTableDef()

MAX_NAME_CHARS = 200
CHUNK = 256 * 1024
# Uploaded models never change under their id, so caches may keep them for good. The default
# avatar's bytes change when its generator does, so it is revalidated (its ETag still saves
# the download).
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300, must-revalidate"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnimationMapIn(Strict):
    animation_map: dict[str, str] | None = Field(
        description="behaviour -> clip name; null resets it (to the guessed map, or removes the chatbot's own)")
    chatbot_id: uuid.UUID | None = Field(None, description="Set this chatbot's own map for this avatar.")


class ChatbotAvatarIn(Strict):
    avatar_id: uuid.UUID | None = Field(None, description="null: the default avatar")


def _tenant(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.query.get("tenant_id"), "tenant_id", status=400)


def _avatar_id(request: web.Request) -> uuid.UUID:
    raw = request.match_info["avatar_id"]
    return DEFAULT_AVATAR_ID if raw == "default" else parse_uuid(raw, "avatar")


def _chatbot_id(request: web.Request) -> uuid.UUID:
    return parse_uuid(request.match_info["chatbot_id"], "chatbot")


@routes.get("/internal/avatars/library")
async def library(request: web.Request) -> web.Response:
    return json_response({"data": service.library()})


async def _receive(request: web.Request, max_bytes: int, incoming: Path) -> tuple[str | None, str, bool]:
    """(name, filename, whether a file came) of a multipart upload; the file goes straight to
    ``incoming`` on disk, so uploads at once cost the service no memory."""
    name, filename, received = None, "", False
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "name":
                raw = bytearray()
                while len(raw) <= MAX_NAME_CHARS * 4 and (chunk := await part.read_chunk(1024)):
                    raw.extend(chunk)
                name = raw.decode("utf-8", "replace")[:MAX_NAME_CHARS + 1]
            elif part.name == "file":
                filename = Path(part.filename or "").name[:MAX_NAME_CHARS]
                size = 0
                with open(incoming, "wb") as out:
                    while chunk := await part.read_chunk(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ApiError(413, "too_large", f"the file is larger than {max_bytes} bytes",
                                           {"max_bytes": max_bytes})
                        await asyncio.to_thread(out.write, chunk)
                received = True
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # aiohttp's multipart parser on a malformed body
        raise ApiError(400, "bad_multipart", "the multipart body is malformed", str(exc)[:200]) from None
    return name, filename, received


@routes.post("/internal/avatars")
async def upload(request: web.Request) -> web.Response:
    tenant_id = _tenant(request)
    settings = request.app[SETTINGS]
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the model as multipart/form-data with a 'file' part")
    if request.content_length is not None and request.content_length > settings.max_bytes + 64 * 1024:
        raise ApiError(413, "too_large", f"the file is larger than {settings.max_bytes} bytes",
                       {"max_bytes": settings.max_bytes})
    incoming = request.app[STORE].incoming()
    try:
        name, filename, received = await _receive(request, settings.max_bytes, incoming)
        if not received:
            raise ApiError(422, "missing_file", "send the .glb file in a part named 'file'")
        name = (name or "").strip() or (re.sub(r"\.glb$", "", filename, flags=re.I) or "Avatar")
        if len(name) > MAX_NAME_CHARS:
            raise ApiError(422, "validation_error", f"the name is limited to {MAX_NAME_CHARS} characters")
        body = await service.upload(request.app[POOL], request.app[STORE], request.app[VALIDATOR],
                                          tenant_id=tenant_id, name=name, filename=filename, received=incoming,
                                          max_per_tenant=settings.max_avatars_per_tenant)
    finally:
        incoming.unlink(missing_ok=True)  # kept files were renamed away
    return json_response(body, status=201)


@routes.get("/internal/avatars")
async def list_avatars(request: web.Request) -> web.Response:
    data = await service.list_avatars(request.app[POOL], request.app[DEFAULT], _tenant(request))
    return json_response({"data": data})


@routes.get("/internal/avatars/{avatar_id}")
async def get_avatar(request: web.Request) -> web.Response:
    return json_response(await service.get_avatar(
        request.app[POOL], request.app[DEFAULT], _tenant(request), _avatar_id(request)))


@routes.delete("/internal/avatars/{avatar_id}")
async def delete_avatar(request: web.Request) -> web.Response:
    await service.delete_avatar(request.app[POOL], request.app[STORE], _tenant(request), _avatar_id(request))
    return web.Response(status=204)


@routes.put("/internal/avatars/{avatar_id}/animation-map")
async def put_animation_map(request: web.Request) -> web.Response:
    tenant_id, avatar_id = _tenant(request), _avatar_id(request)
    body = await read_json(request, AnimationMapIn)
    return json_response(await service.put_animation_map(
        request.app[POOL], request.app[DEFAULT], tenant_id, avatar_id, body.animation_map, body.chatbot_id))


@routes.put("/internal/chatbots/{chatbot_id}/avatar")
async def set_chatbot_avatar(request: web.Request) -> web.Response:
    tenant_id, chatbot_id = _tenant(request), _chatbot_id(request)
    body = await read_json(request, ChatbotAvatarIn)
    return json_response(await service.set_chatbot_avatar(
        request.app[POOL], request.app[DEFAULT], tenant_id, chatbot_id, body.avatar_id))


@routes.get("/internal/chatbots/{chatbot_id}/avatar")
async def get_chatbot_avatar(request: web.Request) -> web.Response:
    return json_response(await service.chatbot_avatar(
        request.app[POOL], request.app[DEFAULT], _tenant(request), _chatbot_id(request)))


# --- model bytes -----------------------------------------------------------------------------

def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """``bytes=a-b`` / ``a-`` / ``-n`` -> (start, end inclusive). None: serve the whole file
    (no range, a malformed one, or several: a full 200 is always allowed). False: unsatisfiable."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            return False
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


def _read_slice(path: Path, start: int, length: int):
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0:
            chunk = f.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


async def serve_model(request: web.Request, path: Path, sha256: str, cache_control: str) -> web.StreamResponse:
    """ETag (the file's SHA-256), If-None-Match -> 304, one byte range -> 206 (If-Range
    respected), unsatisfiable -> 416. Readable from any origin: the widget runs on tenants' sites."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, "Cache-Control": cache_control, "Accept-Ranges": "bytes",
               "Access-Control-Allow-Origin": "*",
               "Access-Control-Expose-Headers": "ETag, Content-Length, Content-Range, Accept-Ranges"}
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except FileNotFoundError:
        log.error("model_file_missing", path=str(path))
        raise ApiError(404, "not_found", "the model file is missing") from None
    start, end, status = 0, size - 1, 200
    if_range = request.headers.get("If-Range")
    if "Range" in request.headers and (if_range is None or if_range.strip() == etag):
        wanted = parse_range(request.headers["Range"], size)
        if wanted is False:
            raise ApiError(416, "range_not_satisfiable", "the range is outside the file",
                           headers={"Content-Range": f"bytes */{size}", **headers})
        if wanted:
            (start, end), status = wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1
    response = web.StreamResponse(status=status, headers={**headers, "Content-Type": "model/gltf-binary"})
    response.content_length = length
    await response.prepare(request)
    if request.method != "HEAD":
        chunks = _read_slice(path, start, length)
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                await response.write(chunk)
        finally:
            chunks.close()  # the visitor may leave mid-download: close the file now
    await response.write_eof()
    return response


@routes.get("/internal/avatars/{avatar_id}/model.glb")
async def model(request: web.Request) -> web.StreamResponse:
    avatar_id = _avatar_id(request)
    if service.is_default(avatar_id):
        default = request.app[DEFAULT]
        return await serve_model(request, request.app[STORE].default_path, default.info.sha256, REVALIDATE)
    tenant_id = _tenant(request) if "tenant_id" in request.query else None
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_avatar(conn, tenant_id, avatar_id)
    if row is None:
        raise ApiError(404, "not_found", "no such avatar")
    return await serve_model(request, request.app[STORE].path(avatar_id), row["sha256"], IMMUTABLE)
