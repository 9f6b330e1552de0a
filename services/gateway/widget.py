"""The widget's public side: start a conversation, post messages, stream replies over SSE."""
from __future__ import annotations

import asyncio
import uuid

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from common import events as ev
from common.bus import BusError
from common.logging import bind_contextvars, get_logger
from common.web import BUS, POOL, ApiError, json_response, read_json
from services.gateway import auth, repository
from services.gateway.clients import CONVERSATION
from services.gateway.models import ConversationIn, ConversationStarted, MessageAccepted, MessageIn
from services.gateway.stream import StreamHub, VisitorStream, parse_last_event_id, pump
from services.gateway.views import SETTINGS_KEY, _uuid, snapshot

log = get_logger(__name__)
HUB = web.AppKey("stream_hub", StreamHub)
routes = web.RouteTableDef()


async def _chatbot(request: web.Request):
    embed_id = request.match_info["embed_id"]
    async with request.app[POOL].acquire() as conn:
        row = await repository.chatbot_by_embed_id(conn, embed_id)
    if row is None:
        raise ApiError(404, "unknown_embed_id", "no chatbot has this embed id")
    bind_contextvars(tenant_id=str(row["tenant_id"]), chatbot_id=str(row["id"]))
    return row


def _visitor(request: web.Request, chatbot) -> auth.Visitor:
    conversation_id = _uuid(request.match_info["conversation_id"], "conversation")
    visitor = auth.verify_visitor_token(request, request.app[SETTINGS_KEY].visitor_token_secret,
                                        chatbot["embed_id"], conversation_id)
    bind_contextvars(conversation_id=str(conversation_id))
    return visitor


@routes.post("/api/widget/v1/{embed_id}/conversations")
async def start_conversation(request: web.Request) -> web.Response:
    chatbot = await _chatbot(request)
    body = await read_json(request, ConversationIn) if request.body_exists else ConversationIn()
    created = await request.app[CONVERSATION].request("POST", "/internal/conversations", json={
        "tenant_id": str(chatbot["tenant_id"]), "chatbot_id": str(chatbot["id"]),
        "visitor_id": str(body.visitor_id) if body.visitor_id else None})
    settings = request.app[SETTINGS_KEY]
    conversation_id, visitor_id = uuid.UUID(created["conversation_id"]), uuid.UUID(created["visitor_id"])
    token = auth.issue_visitor_token(settings.visitor_token_secret, tenant_id=chatbot["tenant_id"],
                                     embed_id=chatbot["embed_id"], conversation_id=conversation_id,
                                     visitor_id=visitor_id, ttl_s=settings.visitor_token_ttl_s)
    return json_response(ConversationStarted(conversation_id=conversation_id, visitor_id=visitor_id,
                                             visitor_token=token, greeting=chatbot["config"].get("greeting", "")),
                         status=201)


@routes.post("/api/widget/v1/{embed_id}/conversations/{conversation_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    chatbot = await _chatbot(request)
    visitor = _visitor(request, chatbot)
    body = await read_json(request, MessageIn)
    text = body.text.strip()
    limit = request.app[SETTINGS_KEY].max_message_chars
    if not text:
        raise ApiError(422, "empty_message", "the message is empty")
    if len(text) > limit:
        raise ApiError(413, "message_too_long", f"messages are limited to {limit} characters")
    # the same client message id always maps to the same message id: retries are harmless
    message_id = uuid.uuid5(visitor.conversation_id, body.client_message_id)
    event = ev.VisitorMessageReceivedEvent(
        tenant_id=chatbot["tenant_id"], chatbot_id=chatbot["id"], conversation_id=visitor.conversation_id,
        visitor_id=visitor.visitor_id, message_id=message_id, client_message_id=body.client_message_id,
        text=text, chatbot=snapshot(chatbot))
    try:
        await request.app[BUS].publish(event)
    except (BusError, ConnectionError, asyncio.TimeoutError) as exc:
        log.error("message_not_accepted", error=repr(exc))
        raise ApiError(503, "unavailable", "the message could not be accepted; try again",
                       headers={"Retry-After": "2"}) from None
    log.info("visitor_message_accepted", message_id=str(message_id))
    return json_response(MessageAccepted(message_id=message_id, conversation_id=visitor.conversation_id),
                         status=202)


@routes.get("/api/widget/v1/{embed_id}/conversations/{conversation_id}/messages")
async def transcript(request: web.Request) -> web.Response:
    chatbot = await _chatbot(request)
    visitor = _visitor(request, chatbot)
    body = await request.app[CONVERSATION].request(
        "GET", f"/internal/conversations/{visitor.conversation_id}/messages",
        params={"tenant_id": str(visitor.tenant_id)})
    return json_response(body)


@routes.get("/api/widget/v1/{embed_id}/conversations/{conversation_id}/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    chatbot = await _chatbot(request)
    visitor = _visitor(request, chatbot)
    settings = request.app[SETTINGS_KEY]
    last = parse_last_event_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    hub = request.app[HUB]
    queue = await hub.open(visitor.conversation_id)  # bind before replaying: nothing falls between
    try:
        resp = EventSourceResponse(ping_interval=settings.sse_ping_s,
                                   headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        visitor_stream = VisitorStream(resp, settings.animation_wait_s)
        if last is not None:
            seq, ended = last
            replies = await request.app[CONVERSATION].request(
                "GET", f"/internal/conversations/{visitor.conversation_id}/replies",
                params={"after_seq": str(seq if ended else seq - 1), "tenant_id": str(visitor.tenant_id)})
            await visitor_stream.replay(replies["data"])
        await pump(visitor_stream, queue)
        return resp
    finally:
        await hub.close(visitor.conversation_id, queue)
