"""Internal HTTP API of the conversation service (called by the gateway only)."""
from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel

from common import events as ev
from common import pagination
from common.db import enqueue
from common.errors import parse_uuid
from common.web import POOL, ApiError, json_response, read_json
from services.conversation import repository, service

routes = web.RouteTableDef()


class StartConversation(BaseModel):
    tenant_id: uuid.UUID
    chatbot_id: uuid.UUID
    visitor_id: uuid.UUID | None = None


def message_out(row) -> dict:
    return {
        "id": str(row["id"]), "seq": row["seq"],
        "role": row["role"], "status": row["status"], "text": row["text"],
        "citations": row["citations"] or [], "intent": row["intent"], "sentiment": row["sentiment"],
        "usage": row["usage"], "timings": row["timings"], "animation": row["animation"],
        "rating": row.get("rating"), "rating_comment": row.get("rating_comment"),
        "error_code": row["error_code"], "error_message": row["error_message"],
        "created_at": row["created_at"].isoformat(),
        "completed_at": row["completed_at"].isoformat() if row["completed_at"] else None,
    }


@routes.post("/internal/conversations")
async def start(request: web.Request) -> web.Response:
    body = await read_json(request, StartConversation)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        visitor = None
        if body.visitor_id:
            visitor = await repository.get_visitor(conn, body.visitor_id, body.tenant_id, body.chatbot_id)
        returning = visitor is not None
        visitor = visitor or await repository.create_visitor(conn, body.tenant_id, body.chatbot_id)
        conversation = await repository.create_conversation(conn, body.tenant_id, body.chatbot_id, visitor["id"])
        await enqueue(conn, ev.ConversationStartedEvent(
            tenant_id=body.tenant_id, chatbot_id=body.chatbot_id, conversation_id=conversation["id"],
            visitor_id=visitor["id"], returning_visitor=returning))
    return json_response({"conversation_id": str(conversation["id"]), "visitor_id": str(visitor["id"]),
                          "returning_visitor": returning}, status=201)


async def _messages(request: web.Request, **filters) -> web.Response:
    conversation_id = parse_uuid(request.match_info["conversation_id"], "conversation")
    tenant_id = parse_uuid(request.query.get("tenant_id"), "tenant")
    try:
        after_seq = int(request.query.get("after_seq", "0"))
    except ValueError:
        raise ApiError(400, "bad_request", "after_seq must be an integer") from None
    async with request.app[POOL].acquire() as conn:
        if await repository.conversation(conn, conversation_id, tenant_id) is None:
            raise ApiError(404, "not_found", "no such conversation")
        rows = await repository.messages(conn, conversation_id, tenant_id, after_seq, **filters)
    return json_response({"data": [message_out(r) for r in rows]})


@routes.get("/internal/conversations/{conversation_id}/messages")
async def messages(request: web.Request) -> web.Response:
    return await _messages(request)


@routes.get("/internal/conversations/{conversation_id}/replies")
async def replies(request: web.Request) -> web.Response:
    """Finished replies after a sequence number: what an SSE reconnect replays."""
    return await _messages(request, role="assistant", finished_only=True)


def conversation_out(row) -> dict:
    return {"id": str(row["id"]), "chatbot_id": str(row["chatbot_id"]), "visitor_id": str(row["visitor_id"]),
            "handoff_requested": row["handoff_requested"], "messages": row["messages"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def _time(value: str | None):
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        raise ApiError(422, "validation_error", f"not a timestamp: {value}") from None


@routes.get("/internal/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    """A tenant's conversations (one chatbot's with ``chatbot_id``) for the tenant's API, newest
    first, filtered (time, visitor, handoff, rating) and paginated."""
    q = request.query
    tenant_id = parse_uuid(q.get("tenant_id"), "tenant")
    chatbot_id = parse_uuid(q["chatbot_id"], "chatbot") if q.get("chatbot_id") else None
    limit = max(1, min(100, int(q.get("limit", "20")) if q.get("limit", "20").isdigit() else 20))
    visitor_id = parse_uuid(q["visitor_id"], "visitor") if q.get("visitor_id") else None
    handoff = {"true": True, "false": False}.get(q.get("handoff", ""))
    rating = q.get("rating") if q.get("rating") in ("up", "down") else None
    async with request.app[POOL].acquire() as conn:
        rows = await repository.list_conversations(
            conn, tenant_id, chatbot_id, since=_time(q.get("from")), until=_time(q.get("to")),
            visitor_id=visitor_id, handoff=handoff, rating=rating, before=pagination.decode(q.get("cursor")),
            limit=limit + 1)
    return json_response(pagination.page(rows, limit, conversation_out))


@routes.get("/internal/conversations/{conversation_id}/transcript")
async def transcript(request: web.Request) -> web.Response:
    conversation_id = parse_uuid(request.match_info["conversation_id"], "conversation")
    tenant_id = parse_uuid(request.query.get("tenant_id"), "tenant")
    async with request.app[POOL].acquire() as conn:
        conversation = await repository.conversation_with_count(conn, conversation_id, tenant_id)
        if conversation is None:
            raise ApiError(404, "not_found", "no such conversation")
        rows = await repository.messages(conn, conversation_id, tenant_id)
    return json_response({"conversation": conversation_out(conversation), "messages": [message_out(r) for r in rows]})


@routes.get("/internal/replies/{reply_id}")
async def get_reply(request: web.Request) -> web.Response:
    """One reply, if it is this tenant's (the gateway checks before cancelling or rating)."""
    reply_id = parse_uuid(request.match_info["reply_id"], "reply")
    tenant_id = parse_uuid(request.query.get("tenant_id"), "tenant")
    async with request.app[POOL].acquire() as conn:
        row = await repository.reply(conn, reply_id, tenant_id)
    if row is None:
        raise ApiError(404, "not_found", "no such reply")
    return json_response({**message_out(row), "conversation_id": str(row["conversation_id"]),
                          "chatbot_id": str(row["chatbot_id"])})


@routes.get("/internal/visitors/{visitor_id}/export")
async def export_visitor(request: web.Request) -> web.Response:
    """Everything stored about one visitor of one chatbot (the tenant's data-access request)."""
    q = request.query
    tenant_id, chatbot_id = parse_uuid(q.get("tenant_id"), "tenant"), parse_uuid(q.get("chatbot_id"), "chatbot")
    found = await service.export_visitor(request.app[POOL], tenant_id, chatbot_id,
                                         parse_uuid(request.match_info["visitor_id"], "visitor"))
    if found is None:
        raise ApiError(404, "not_found", "no such visitor")
    visitor = found["visitor"]
    return json_response({
        "visitor": {"id": str(visitor["id"]), "chatbot_id": str(visitor["chatbot_id"]),
                    "created_at": visitor["created_at"].isoformat(),
                    "last_seen_at": visitor["last_seen_at"].isoformat()},
        "conversations": [{**conversation_out({**dict(row), "messages": len(messages)}),
                           "messages": [{**message_out(m), "rating": m["rating"], "rating_comment": m["rating_comment"],
                                         "rated_at": m["rated_at"].isoformat() if m["rated_at"] else None}
                                        for m in messages]}
                          for row, messages in found["conversations"]]})
