"""Tenant-facing avatar routes under /api/v1, and the public model URL the widget loads.

The gateway authenticates the API key, checks chatbot ownership, and forwards to the avatar
service's internal API with the tenant's id; the avatar service's status and JSON body come
back unchanged, so its validation messages reach the tenant as written. Uploads stream
through as they came (multipart), and model bytes stream back with the avatar service's
ETag, Cache-Control, Content-Range and status, so conditional and Range requests work end to
end (304, 206, 416).
"""
from __future__ import annotations

import os
import uuid

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from common.http import InternalClient, unreachable
from common.logging import get_contextvars, get_logger
from common.errors import parse_uuid
from common.web import POOL, ApiError, json_response
from services.gateway import repository
from services.gateway.api import Ctx, Operations
from services.gateway.clients import INTERNAL
from services.gateway.views import assign_avatar


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)
    app.router.add_routes(routes)


log = get_logger(__name__)
routes = web.RouteTableDef()  # what the op() registry doesn't describe: the CORS preflight

# the avatar service has the same setting and checks the file itself; this stops a huge body early
MAX_UPLOAD_BYTES = int(os.environ.get("AVATAR_MAX_BYTES", 25 * 1024 * 1024))
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 64 * 1024  # multipart framing and the name field
_MODEL_REQUEST_HEADERS = ("Range", "If-None-Match", "If-Range", "If-Modified-Since")
_MODEL_RESPONSE_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "ETag", "Cache-Control",
                           "Accept-Ranges", "Last-Modified")
CORS = {"Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "ETag, Content-Length, Content-Range, Accept-Ranges"}


class AnimationMapIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    animation_map: dict[str, str] | None = Field(
        description="behaviour -> clip name. Replaces the map; null goes back to the guessed one.")
    chatbot_id: uuid.UUID | None = Field(
        None, description="Set this chatbot's own map for this avatar instead (null map: remove it).")


class ChatbotAvatarIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    avatar_id: uuid.UUID | None = Field(description="An uploaded avatar's id; null for the default avatar.")


def _avatar_ref(request: web.Request) -> str:
    raw = request.match_info["avatar_id"]
    return raw if raw == "default" else str(parse_uuid(raw, "avatar"))


async def _owned_chatbot(request: web.Request, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_chatbot(conn, tenant_id, chatbot_id)
    if row is None:
        raise ApiError(404, "not_found", "no such chatbot")
    return row


def _avatar(request: web.Request) -> InternalClient:
    return request.app[INTERNAL]["avatar"]


def _headers(extra: dict | None = None) -> dict:
    headers = dict(extra or {})
    ctx = get_contextvars()
    if "correlation_id" in ctx:
        headers["X-Correlation-ID"] = ctx["correlation_id"]
    return headers


async def forward_upload(client: InternalClient, request: web.Request, tenant_id: uuid.UUID) -> web.Response:
    """Stream the tenant's multipart body to the avatar service, at most ``MAX_BODY_BYTES``."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"models are limited to {MAX_UPLOAD_BYTES} bytes",
                       {"max_bytes": MAX_UPLOAD_BYTES})
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the model as multipart/form-data with a 'file' part")
    too_large = False

    async def body():
        nonlocal too_large
        sent = 0
        async for piece in request.content.iter_chunked(256 * 1024):
            sent += len(piece)
            if sent > MAX_BODY_BYTES:
                too_large = True
                raise ApiError(413, "too_large", f"models are limited to {MAX_UPLOAD_BYTES} bytes")
            yield piece

    try:
        async with client.session.post(
                client.base_url + "/internal/avatars", data=body(), params={"tenant_id": str(tenant_id)},
                headers=_headers({"Content-Type": request.headers["Content-Type"]}),
                timeout=aiohttp.ClientTimeout(total=120)) as resp:
            payload = await resp.read()
            if resp.status >= 500:
                raise ApiError(503, "unavailable", "the avatar service failed; try again")
            return web.Response(body=payload, status=resp.status, content_type="application/json")
    except ApiError:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        if too_large:
            raise ApiError(413, "too_large", f"models are limited to {MAX_UPLOAD_BYTES} bytes") from None
        raise unreachable("avatar", exc) from None


async def forward_model(client: InternalClient, request: web.Request, path: str) -> web.StreamResponse:
    """Relay model bytes with the conditional and Range headers both ways, status included."""
    headers = _headers({k: request.headers[k] for k in _MODEL_REQUEST_HEADERS if k in request.headers})
    try:
        async with client.session.request(request.method, client.base_url + path, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as resp:
            if resp.status >= 500:
                raise ApiError(503, "unavailable", "the avatar service failed; try again")
            out = web.StreamResponse(status=resp.status, headers={
                **{k: resp.headers[k] for k in _MODEL_RESPONSE_HEADERS if k in resp.headers}, **CORS})
            await out.prepare(request)
            if request.method != "HEAD":
                async for chunk in resp.content.iter_chunked(256 * 1024):
                    await out.write(chunk)
            await out.write_eof()
            return out
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise unreachable("avatar", exc) from None


# --- tenant routes ---------------------------------------------------------------------------

@op("POST", "/api/v1/avatars", summary="Upload a .glb avatar", tag="Avatars", raw_body="multipart/form-data",
    status=201, json_object=True, extra_responses={201: "What the model holds: clips, morph targets, counts, sha256, "
                                                        "and its guessed animation map"})
async def upload_avatar(ctx: Ctx) -> web.Response:
    """Multipart: `file` (a .glb) and an optional `name`. The file is validated for real (header,
    chunks, JSON, limits, at least one mesh); a refused file stores nothing."""
    return await forward_upload(_avatar(ctx.request), ctx.request, ctx.principal.tenant_id)


@op("GET", "/api/v1/avatars", summary="List your avatars (and the default one)", tag="Avatars", json_object=True)
async def list_avatars(ctx: Ctx) -> web.Response:
    return json_response(await _avatar(ctx.request).request(
        "GET", "/internal/avatars", params={"tenant_id": str(ctx.principal.tenant_id)}))


@op("GET", "/api/v1/avatar-behaviours", summary="The canonical behaviours", tag="Avatars", json_object=True)
async def behaviour_library(ctx: Ctx) -> web.Response:
    """The canonical behaviours an animation map maps to clips."""
    return json_response(await _avatar(ctx.request).request("GET", "/internal/avatars/library"))


@op("GET", "/api/v1/avatars/{avatar_id}", summary="An avatar: clips, morph targets, counts, map", tag="Avatars",
    json_object=True)
async def get_avatar(ctx: Ctx) -> web.Response:
    return json_response(await _avatar(ctx.request).request(
        "GET", f"/internal/avatars/{_avatar_ref(ctx.request)}", params={"tenant_id": str(ctx.principal.tenant_id)}))


@op("DELETE", "/api/v1/avatars/{avatar_id}", summary="Delete an avatar", tag="Avatars", status=204,
    extra_responses={409: "A chatbot still shows it"})
async def delete_avatar(ctx: Ctx) -> web.Response:
    """409 while a chatbot still shows it."""
    # a deleted chatbot let its avatar go in the avatar service (ChatbotDeletedEvent)
    await _avatar(ctx.request).request("DELETE", f"/internal/avatars/{_avatar_ref(ctx.request)}",
                                       params={"tenant_id": str(ctx.principal.tenant_id)})
    return web.Response(status=204)


@op("PUT", "/api/v1/avatars/{avatar_id}/animation-map", summary="Map behaviours to the model's clips",
    tag="Avatars", body=AnimationMapIn, json_object=True)
async def put_animation_map(ctx: Ctx) -> web.Response:
    """Every behaviour name must be in the library and every clip in the model (422 if not)."""
    request, tenant_id = ctx.request, ctx.principal.tenant_id
    avatar_ref = _avatar_ref(request)
    body = ctx.body
    if body.chatbot_id is not None:
        await _owned_chatbot(request, tenant_id, body.chatbot_id)
    return json_response(await _avatar(request).request(
        "PUT", f"/internal/avatars/{avatar_ref}/animation-map", params={"tenant_id": str(tenant_id)},
        json=body.model_dump(mode="json")))


@op("PUT", "/api/v1/chatbots/{chatbot_id}/avatar", summary="Choose a chatbot's avatar", tag="Avatars",
    body=ChatbotAvatarIn, json_object=True)
async def set_chatbot_avatar(ctx: Ctx) -> web.Response:
    """The chatbot shows this avatar (null: the default one) and plays its animation map."""
    request, tenant_id = ctx.request, ctx.principal.tenant_id
    chatbot_id = parse_uuid(request.match_info["chatbot_id"], "chatbot")
    body = ctx.body
    await _owned_chatbot(request, tenant_id, chatbot_id)
    # the avatar service alone keeps the choice; the widget config and the replies read it there
    result = await assign_avatar(request.app, tenant_id, chatbot_id, body.model_dump(mode="json")["avatar_id"])
    return json_response(result)


@op("GET", "/api/v1/chatbots/{chatbot_id}/avatar", summary="A chatbot's avatar and its behaviour-to-clip map",
    tag="Avatars", json_object=True)
async def get_chatbot_avatar(ctx: Ctx) -> web.Response:
    """The chatbot's avatar, model URL and effective behaviour -> clip map."""
    request, tenant_id = ctx.request, ctx.principal.tenant_id
    chatbot_id = parse_uuid(request.match_info["chatbot_id"], "chatbot")
    await _owned_chatbot(request, tenant_id, chatbot_id)
    return json_response(await _avatar(request).request(
        "GET", f"/internal/chatbots/{chatbot_id}/avatar", params={"tenant_id": str(tenant_id)}))


# --- public: the widget loads models without an API key -----------------------------------

@op("GET", "/api/widget/v1/avatars/{avatar_id}/model.glb", summary="An avatar's model (.glb)", tag="Widget",
    auth="public", content_type="model/gltf-binary",
    extra_responses={206: "Partial content (Range)", 304: "Not modified (If-None-Match)", 416: "Bad range"})
async def avatar_model(ctx: Ctx) -> web.StreamResponse:
    """The .glb, cacheable for a year (an id's bytes never change), from any origin, with
    ETag/If-None-Match and Range/206."""
    request = ctx.request
    return await forward_model(_avatar(request), request, f"/internal/avatars/{_avatar_ref(request)}/model.glb")


@routes.options("/api/widget/v1/avatars/{avatar_id}/model.glb")
async def avatar_model_preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={
        **CORS, "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers": "Range, If-None-Match, If-Range", "Access-Control-Max-Age": "86400"})
