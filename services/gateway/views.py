"""Tenant and admin REST API under /api/v1."""
from __future__ import annotations

import secrets
import uuid

from aiohttp import web

from common import events as ev
from common.web import BUS, POOL, ApiError, json_response, read_json
from services.gateway import auth, repository
from services.gateway.models import (ApiKeyOut, ChatbotIn, ChatbotOut, TenantCreated, TenantIn,
                                     TenantOut)
from services.gateway.settings import Settings

SETTINGS_KEY = web.AppKey("gateway_settings", Settings)
routes = web.RouteTableDef()


def chatbot_out(row) -> ChatbotOut:
    return ChatbotOut(id=row["id"], name=row["name"], embed_id=row["embed_id"], created_at=row["created_at"],
                      updated_at=row["updated_at"], **row["config"])


def snapshot(row) -> ev.ChatbotSnapshot:
    return ev.ChatbotSnapshot(chatbot_id=row["id"], name=row["name"], **row["config"])


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"no such {what}") from None


@routes.post("/api/v1/admin/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    auth.require_admin(request, request.app[SETTINGS_KEY].admin_api_key)
    body = await read_json(request, TenantIn)
    key_id, full_key, secret_hash = auth.new_api_key()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        tenant = await repository.create_tenant(conn, body.name)
        key = await repository.create_api_key(conn, key_id, tenant["id"], secret_hash, "full", "default")
    return json_response(TenantCreated(tenant=TenantOut(**dict(tenant)),
                                       api_key=ApiKeyOut(**dict(key), key=full_key)), status=201)


@routes.post("/api/v1/chatbots")
async def create_chatbot(request: web.Request) -> web.Response:
    principal = await auth.authenticate(request)
    body = await read_json(request, ChatbotIn)
    config = body.model_dump(mode="json", exclude={"name"})
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repository.create_chatbot(conn, principal.tenant_id, secrets.token_urlsafe(18),
                                              body.name, config)
    await request.app[BUS].publish(ev.ChatbotCreatedEvent(tenant_id=principal.tenant_id, chatbot=snapshot(row)))
    return json_response(chatbot_out(row), status=201)


@routes.get("/api/v1/chatbots")
async def list_chatbots(request: web.Request) -> web.Response:
    principal = await auth.authenticate(request)
    async with request.app[POOL].acquire() as conn:
        rows = await repository.list_chatbots(conn, principal.tenant_id, 100)
    return json_response({"data": [chatbot_out(r).model_dump(mode="json") for r in rows]})


@routes.get("/api/v1/chatbots/{chatbot_id}")
async def get_chatbot(request: web.Request) -> web.Response:
    principal = await auth.authenticate(request)
    chatbot_id = _uuid(request.match_info["chatbot_id"], "chatbot")
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_chatbot(conn, principal.tenant_id, chatbot_id)
    if row is None:
        raise ApiError(404, "not_found", "no such chatbot")
    return json_response(chatbot_out(row))
