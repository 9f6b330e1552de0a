"""A visitor's data rights, for the tenant: export everything stored about one visitor of a
chatbot, and erase it everywhere.

The erasure is an event. The gateway drops the visitor's sessions (their tokens stop working)
and publishes ``VisitorDataErasureRequestedEvent`` through its outbox in one transaction;
conversation erases the visitor's conversations and messages and names them in
``VisitorDataErasedEvent``; ai, avatar and analytics erase what they hold of those.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from aiohttp import web

from common import events as ev
from common.db import enqueue
from common.web import POOL, ApiError, json_response
from services.gateway import ratelimit, repository
from services.gateway.api import Ctx, Operations
from services.gateway.clients import CONVERSATION, INTERNAL
from services.gateway.models import Out, VisitorExport


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


BASE = "/api/v1/chatbots/{chatbot_id}/visitors/{visitor_id}"


class VisitorErasing(Out):
    visitor_id: uuid.UUID
    status: str = "erasing"


async def _owned(ctx: Ctx) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """(tenant, chatbot, visitor): the chatbot must be the caller's (404 otherwise)."""
    tenant_id = ctx.principal.tenant_id
    chatbot_id = uuid.UUID(ctx.request.match_info["chatbot_id"])
    async with ctx.request.app[POOL].acquire() as conn:
        if await repository.get_chatbot(conn, tenant_id, chatbot_id) is None:
            raise ApiError(404, "not_found", "no such chatbot")
    return tenant_id, chatbot_id, uuid.UUID(ctx.request.match_info["visitor_id"])


async def _conversation_export(ctx: Ctx, tenant_id, chatbot_id, visitor_id) -> dict:
    """What the conversation service holds of the visitor; 404 when it knows no such visitor."""
    return await ctx.request.app[CONVERSATION].request(
        "GET", f"/internal/visitors/{visitor_id}/export",
        params={"tenant_id": str(tenant_id), "chatbot_id": str(chatbot_id)})


@op("GET", f"{BASE}/export", summary="Everything stored about one visitor (data access)", tag="Visitors",
    response=VisitorExport)
async def export_visitor(ctx: Ctx) -> web.Response:
    """The visitor's conversations with every message and reply, their ratings and comments,
    and every analytics event recorded of them, as one JSON document. The visitor id is in
    each conversation of the conversations list (and in the widget's sessionStorage)."""
    tenant_id, chatbot_id, visitor_id = await _owned(ctx)
    stored = await _conversation_export(ctx, tenant_id, chatbot_id, visitor_id)
    analytics = await ctx.request.app[INTERNAL]["analytics"].request(
        "POST", f"/internal/visitors/{visitor_id}/export",
        json={"tenant_id": str(tenant_id), "chatbot_id": str(chatbot_id),
              "conversation_ids": [c["id"] for c in stored["conversations"]]})
    return json_response(VisitorExport(visitor=stored["visitor"], conversations=stored["conversations"],
                                       analytics_events=analytics["events"],
                                       exported_at=datetime.now(timezone.utc)))


@op("DELETE", BASE, summary="Erase everything stored about one visitor", tag="Visitors", status=202,
    response=VisitorErasing)
async def erase_visitor(ctx: Ctx) -> web.Response:
    """The visitor's tokens stop working at once; their conversations, messages, ratings, ledger
    rows, animation choices and analytics events are erased in every service within moments.
    Counts that name no visitor (the reports' totals) stay."""
    tenant_id, chatbot_id, visitor_id = await _owned(ctx)
    await _conversation_export(ctx, tenant_id, chatbot_id, visitor_id)  # 404 for a visitor it never had
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        await repository.delete_visitor_sessions(conn, tenant_id, chatbot_id, visitor_id)
        await ratelimit.forget(conn, str(visitor_id))
        await enqueue(conn, ev.VisitorDataErasureRequestedEvent(tenant_id=tenant_id, chatbot_id=chatbot_id,
                                                                visitor_id=visitor_id))
    return json_response(VisitorErasing(visitor_id=visitor_id), status=202)
