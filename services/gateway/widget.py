"""The widget's public side: config, conversations, messages and the SSE stream.

Origins: when a chatbot lists allowed origins, every widget call must come from one of them,
or from our own widget frame (whose embedding is limited to those origins by the frame's
`frame-ancestors` policy). Browsers set `Origin` themselves; pages elsewhere cannot use the widget.
"""
from __future__ import annotations

import re
import uuid
from urllib.parse import unquote_plus, urlsplit

import aiohttp
from aiohttp import web
from aiohttp_sse import EventSourceResponse
from pydantic import ConfigDict, Field

from common import events as ev
from common.logging import bind_contextvars, get_logger
from common.web import POOL, ApiError, json_response, read_json
from services.gateway import auth, clients, ratelimit, repository, service
from services.gateway.api import CLIENT_IP, Ctx, Operations
from services.gateway.clients import CONVERSATION, INTERNAL
from services.gateway.models import (ConversationIn, ConversationStarted, HandoffRequested, MessageAccepted,
                                     MessageIn, Out, Query, ReplyCancelled, VisitorMessages, VisitorToken, WidgetConfig)
from services.gateway.stream import StreamHub, VisitorStream, parse_last_event_id, pump, visitor_message
from services.gateway.views import SETTINGS_KEY


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


log = get_logger(__name__)
HUB = web.AppKey("stream_hub", StreamHub)
BASE = "/api/widget/v1/{embed_id}"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: web.Request, chatbot) -> str | None:
    allowed = chatbot["config"].get("allowed_origins") or []
    origin = request.headers.get("Origin")
    if not allowed:
        return origin
    own = _origin_of(request.app[SETTINGS_KEY].public_base_url)
    if origin is None and request.headers.get("Sec-Fetch-Site") == "same-origin":
        # a browser sends no Origin on a same-origin GET: our own pages (the widget frame, the
        # console's preview); it sets Sec-Fetch-Site itself, a page cannot
        return None
    if origin is None or (origin.lower() not in allowed and origin.lower() != own):
        raise ApiError(403, "origin_not_allowed", "this chatbot cannot be used from this website",
                       {"origin": origin})
    return origin


def cors(response: web.StreamResponse, origin: str | None) -> web.StreamResponse:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


async def _chatbot(ctx: Ctx):
    request = ctx.request
    embed_id = request.match_info["embed_id"]
    async with request.app[POOL].acquire() as conn:
        row = await repository.chatbot_by_embed_id(conn, embed_id) if len(embed_id) <= 64 else None
    if row is None:
        raise ApiError(404, "unknown_embed_id", "no chatbot has this embed id")
    bind_contextvars(tenant_id=str(row["tenant_id"]), chatbot_id=str(row["id"]))
    return row


async def _visitor(ctx: Ctx, chatbot, *, refreshing: bool = False) -> auth.Visitor:
    """The signed token, then its session: revoked or past its absolute lifetime is 401. An
    expired token may be refreshed, but only within the session's lifetime."""
    request = ctx.request
    settings = request.app[SETTINGS_KEY]
    conversation_id = uuid.UUID(request.match_info["conversation_id"])
    visitor = auth.verify_visitor_token(request, settings.visitor_token_secret, chatbot["embed_id"], conversation_id,
                                        grace_s=settings.visitor_session_max_age_s if refreshing else 0)
    bind_contextvars(conversation_id=str(conversation_id))
    async with request.app[POOL].acquire() as conn:
        session = await repository.visitor_session(conn, conversation_id)
    return auth.check_session(visitor, session, settings.visitor_session_max_age_s)


def _token(ctx: Ctx, chatbot, conversation_id: uuid.UUID, visitor_id: uuid.UUID,
           session_left_s: float) -> tuple[str, int]:
    settings = ctx.request.app[SETTINGS_KEY]
    ttl = max(1, int(min(settings.visitor_token_ttl_s, session_left_s)))  # never outlives its session
    return auth.issue_visitor_token(settings.visitor_token_secret, tenant_id=chatbot["tenant_id"],
                                    embed_id=chatbot["embed_id"], conversation_id=conversation_id,
                                    visitor_id=visitor_id, ttl_s=ttl), ttl


@op("GET", f"{BASE}/config", summary="What the widget needs to render", tag="Widget", auth="public",
    response=WidgetConfig)
async def widget_config(ctx: Ctx) -> web.Response:
    chatbot = await _chatbot(ctx)
    origin = check_origin(ctx.request, chatbot)
    config = chatbot["config"]
    base = ctx.request.app[SETTINGS_KEY].public_base_url.rstrip("/")
    model_url = f"{base}/api/widget/v1/avatars/default/model.glb"
    animation_map: dict[str, str] = {}
    try:  # the avatar service knows the map; without it the widget still works, by clip names
        avatar = await ctx.request.app[INTERNAL]["avatar"].request(
            "GET", f"/internal/chatbots/{chatbot['id']}/avatar", params={"tenant_id": str(chatbot["tenant_id"])},
            timeout=2.0)
        model_url = f"{base}{avatar['model_url']}" if avatar["model_url"].startswith("/") else avatar["model_url"]
        animation_map = {k: v for k, v in (avatar.get("animation_map") or {}).items() if isinstance(v, str)}
    except ApiError as exc:
        log.warning("avatar_map_unavailable", code=exc.code)
    body = WidgetConfig(
        embed_id=chatbot["embed_id"], name=chatbot["name"], greeting=config["persona"]["greeting"],
        welcome_message=config.get("welcome_message", ""), suggested_questions=config.get("suggested_questions", []),
        placement=config["placement"], avatar_model_url=model_url, animation_map=animation_map,
        avatar_layout=config.get("avatar_layout", "stage"), voice=config.get("voice", "none") == "provider")
    return cors(json_response(body), origin)


@op("POST", f"{BASE}/conversations", summary="Start a conversation", tag="Widget", auth="public",
    response=ConversationStarted, status=201)
async def start_conversation(ctx: Ctx) -> web.Response:
    """Returns a short-lived visitor token that opens this conversation, and only it. The body
    is optional: `{"visitor_id": ...}` marks a returning visitor."""
    request = ctx.request
    chatbot = await _chatbot(ctx)
    origin = check_origin(request, chatbot)
    settings = request.app[SETTINGS_KEY]
    # each conversation is a new visitor with its own message limit: the IP pays for them
    await ratelimit.enforce(request, request.app[POOL], await request.app[CLIENT_IP](request),
                            settings.conversation_ip_limit)
    body = ConversationIn()
    if request.body_exists:
        body = await read_json(request, ConversationIn)
    created = await request.app[CONVERSATION].request("POST", "/internal/conversations", json={
        "tenant_id": str(chatbot["tenant_id"]), "chatbot_id": str(chatbot["id"]),
        "visitor_id": str(body.visitor_id) if body.visitor_id else None})
    conversation_id, visitor_id = uuid.UUID(created["conversation_id"]), uuid.UUID(created["visitor_id"])
    async with request.app[POOL].acquire() as conn:
        await repository.start_visitor_session(conn, conversation_id=conversation_id, tenant_id=chatbot["tenant_id"],
                                               chatbot_id=chatbot["id"], visitor_id=visitor_id)
    token, ttl = _token(ctx, chatbot, conversation_id, visitor_id, settings.visitor_session_max_age_s)
    return cors(json_response(ConversationStarted(
        conversation_id=conversation_id, visitor_id=visitor_id, visitor_token=token, visitor_token_expires_in=ttl,
        greeting=chatbot["config"]["persona"]["greeting"]), status=201), origin)


@op("POST", f"{BASE}/conversations/{{conversation_id}}/token", summary="Refresh a visitor token", tag="Widget",
    auth="visitor", response=VisitorToken)
async def refresh_token(ctx: Ctx) -> web.Response:
    """Takes the current token, even an expired one, and returns a fresh one, until the
    conversation's session ends (`VISITOR_SESSION_MAX_AGE`, 24 hours) or a tenant revokes it."""
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot, refreshing=True)
    origin = check_origin(ctx.request, chatbot)
    token, ttl = _token(ctx, chatbot, visitor.conversation_id, visitor.visitor_id, visitor.session_left_s)
    return cors(json_response(VisitorToken(visitor_token=token, visitor_token_expires_in=ttl)), origin)


@op("POST", f"{BASE}/conversations/{{conversation_id}}/messages", summary="Send a visitor message", tag="Widget",
    auth="visitor", body=MessageIn, response=MessageAccepted, status=202)
async def post_message(ctx: Ctx) -> web.Response:
    """Accepted (202) once the message is safely queued; the reply streams on the SSE stream.
    A retry with the same `client_message_id` is the same message."""
    request = ctx.request
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(ctx.request, chatbot)
    settings = request.app[SETTINGS_KEY]
    await ratelimit.enforce(request, request.app[POOL], str(visitor.visitor_id), settings.visitor_limit)
    await ratelimit.enforce(request, request.app[POOL], await request.app[CLIENT_IP](request), settings.message_ip_limit)
    body: MessageIn = ctx.body
    text = body.text.strip()
    if not text:
        raise ApiError(422, "empty_message", "the message is empty")
    if len(text) > settings.max_message_chars:
        raise ApiError(413, "message_too_long", f"messages are limited to {settings.max_message_chars} characters")
    message_id = await service.accept_message(clients.deps(request.app), chatbot, visitor.conversation_id, visitor.visitor_id, text,
                                      body.client_message_id)
    log.info("visitor_message_accepted", message_id=str(message_id))
    return cors(json_response(MessageAccepted(message_id=message_id, conversation_id=visitor.conversation_id),
                              status=202), origin)


@op("GET", f"{BASE}/conversations/{{conversation_id}}/messages", summary="The conversation so far", tag="Widget",
    auth="visitor", response=VisitorMessages)
async def transcript(ctx: Ctx) -> web.Response:
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(ctx.request, chatbot)
    body = await ctx.request.app[CONVERSATION].request(
        "GET", f"/internal/conversations/{visitor.conversation_id}/messages",
        params={"tenant_id": str(visitor.tenant_id)})
    return cors(json_response(VisitorMessages(data=[visitor_message(m) for m in body["data"]])), origin)


@op("GET", f"{BASE}/conversations/{{conversation_id}}/stream", summary="Stream replies (Server-Sent Events)",
    tag="Widget", auth="visitor", content_type="text/event-stream")
async def stream(ctx: Ctx) -> web.StreamResponse:
    """Events: `message.start`, `message.delta` (`offset`, `text`), `avatar.animation`, `message.end`
    (full text, citations, usage), `error`; `: ping` comments keep it alive. Ids are
    `<reply_seq>-<n>`: reconnect with `Last-Event-ID` to receive replies that completed meanwhile.
    EventSource cannot send headers, so the token may come as `?token=`."""
    request = ctx.request
    settings = request.app[SETTINGS_KEY]
    hub = request.app[HUB]
    slots = {f"conversation:{request.match_info['conversation_id']}": settings.sse_max_per_conversation,
             f"ip:{await request.app[CLIENT_IP](request)}": settings.sse_max_per_ip}
    hub.slots.check(slots)  # a flood of opens is refused before it costs a database round trip
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(ctx.request, chatbot)
    last = parse_last_event_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))
    with hub.slots.hold(slots):
        return await _stream(request, hub, visitor, origin, last)


async def _stream(request: web.Request, hub: StreamHub, visitor: auth.Visitor, origin: str | None,
                  last: tuple[int, bool] | None) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    queue = await hub.open(visitor.conversation_id)  # bind before replaying: nothing falls between
    try:
        headers = {"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
        if origin:
            headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin"})
        resp = EventSourceResponse(ping_interval=settings.sse_ping_s, headers=headers)
        await resp.prepare(request)
        # a little after conversation's own deadline, whose failure (with the reply) comes first
        visitor_stream = VisitorStream(resp, settings.animation_wait_s, settings.reply_deadline_s + 15)
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


async def visitor_reply(ctx: Ctx):
    """(chatbot, visitor, origin, reply id) of a reply in the visitor's own conversation: the
    token first (401), then the origin (403), then the reply must be theirs (404)."""
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(ctx.request, chatbot)
    reply_id = ctx.request.match_info["reply_id"]
    reply = await ctx.request.app[CONVERSATION].request(
        "GET", f"/internal/replies/{reply_id}", params={"tenant_id": str(visitor.tenant_id)})
    if reply["conversation_id"] != str(visitor.conversation_id):
        raise ApiError(404, "not_found", "no such reply in this conversation")
    return chatbot, visitor, origin, reply_id


@op("POST", f"{BASE}/conversations/{{conversation_id}}/replies/{{reply_id}}/cancel",
    summary="Stop the reply being streamed", tag="Widget", auth="visitor", status=202, response=ReplyCancelled,
    extra_responses={409: "The reply already ended"})
async def cancel_visitor_reply(ctx: Ctx) -> web.Response:
    """The stream then ends the reply with an `error` event, code `cancelled`."""
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(ctx.request, chatbot)
    reply_id = ctx.request.match_info["reply_id"]
    await service.cancel_reply(clients.deps(ctx.request.app), visitor.tenant_id, reply_id, conversation_id=visitor.conversation_id)
    return cors(json_response(ReplyCancelled(reply_id=reply_id), status=202), origin)


@op("GET", f"{BASE}/conversations/{{conversation_id}}/replies/{{reply_id}}/speech",
    summary="Hear a finished reply (chatbots with a voice)", tag="Widget", auth="visitor", content_type="audio/wav",
    extra_responses={404: "No such reply, or the chatbot has no voice (`voice_off`)",
                     409: "The reply has not finished, or no speech provider is configured",
                     502: "The speech provider failed"})
async def reply_speech(ctx: Ctx) -> web.StreamResponse:
    """The reply's text spoken by the chatbot's speech provider (`voice: provider`), streamed
    as it arrives (WAV). Only for the visitor's own finished replies: what is spoken is always
    the chatbot's reply, never text a visitor chose."""
    request = ctx.request
    chatbot, visitor, origin, reply_id = await visitor_reply(ctx)
    config = chatbot["config"]
    if config.get("voice", "none") != "provider":
        raise ApiError(404, "voice_off", "this chatbot has no voice")
    reply = await request.app[CONVERSATION].request(
        "GET", f"/internal/replies/{reply_id}", params={"tenant_id": str(visitor.tenant_id)})
    if reply.get("status") != "completed" or not reply.get("text"):
        raise ApiError(409, "reply_not_finished", "the reply has not finished")
    ai = request.app[INTERNAL]["ai"]
    try:
        async with ai.session.post(ai.base_url + "/internal/speech", json={
                "tenant_id": str(visitor.tenant_id), "text": reply["text"][:4096],
                "voice": config.get("voice_name", "alloy"), "model": config.get("voice_model", "tts-1")},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as resp:
            if resp.status != 200:
                body = await resp.json(content_type=None)
                error = (body or {}).get("error") or {}
                raise ApiError(resp.status if resp.status < 500 else 502, error.get("code", "voice_failed"),
                               error.get("message", "the speech provider failed"))
            out = web.StreamResponse(headers={"Content-Type": resp.headers.get("Content-Type", "audio/wav"),
                                              "Cache-Control": "no-store"})
            cors(out, origin)
            await out.prepare(request)
            async for chunk in resp.content.iter_chunked(64 * 1024):
                await out.write(chunk)
            await out.write_eof()
            return out
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(502, "voice_failed", "the speech provider did not answer") from exc


@op("POST", f"{BASE}/conversations/{{conversation_id}}/handoff", summary="Ask to talk to a person", tag="Widget",
    auth="visitor", status=202, response=HandoffRequested)
async def request_handoff(ctx: Ctx) -> web.Response:
    """The conversation is flagged for the tenant's team (its transcript shows
    `handoff_requested`) and counted in analytics. No AI reply, and no message of the quota."""
    request = ctx.request
    chatbot = await _chatbot(ctx)
    visitor = await _visitor(ctx, chatbot)
    origin = check_origin(request, chatbot)
    await ratelimit.enforce(request, request.app[POOL], str(visitor.visitor_id),
                            request.app[SETTINGS_KEY].visitor_limit)
    await service.publish_confirmed(clients.deps(request.app), ev.HandoffRequestedEvent(
        tenant_id=visitor.tenant_id, chatbot_id=chatbot["id"], conversation_id=visitor.conversation_id,
        visitor_id=visitor.visitor_id))
    log.info("handoff_requested")
    return cors(json_response(HandoffRequested(conversation_id=visitor.conversation_id), status=202), origin)


EMBED_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def embed_id_of_query(query_string: str) -> str | None:
    """The chat frame's embed id from its raw query string, or None when it names none.

    nginx matches parameter names without decoding them and ignoring case; the browser
    (``URLSearchParams``) decodes them and keeps case. ``?embed%5Fid=VICTIM&embed_id=OPEN``
    meant one embed id to nginx and another to the frame. So any parameter that is an embed
    id to either reading counts, and the query must hold exactly one, spelled plainly, with a
    plain value: then both readings agree. The frame's own script applies the same rule."""
    found = []
    for part in query_string.split("&"):
        raw_name, _, raw_value = part.partition("=")
        if "embed_id" in (raw_name.lower(), unquote_plus(raw_name).lower()):
            found.append((raw_name, raw_value))
    if not found:
        return None
    if len(found) > 1 or found[0][0] != "embed_id" or not EMBED_ID.fullmatch(found[0][1]):
        raise ApiError(403, "ambiguous_embed_id", "the chat frame's address must name its chatbot once, as a "
                       "plain embed_id parameter", {"embed_id_parameters": len(found)})
    return found[0][1]


class FramePolicyQuery(Query):
    # The frame's whole query string comes along (nginx forwards it as it arrived). Only the
    # embed id matters, and embed_id_of_query reads it from the raw string: a malformed one is
    # its 403, never a 422 here, which nginx's auth_request would turn into a 500.
    model_config = ConfigDict(extra="ignore")
    embed_id: str = Field("", json_schema_extra={"pattern": "^[A-Za-z0-9_-]{0,64}$", "maxLength": 64})


class FramePolicy(Out):
    frame_ancestors: str


@op("GET", "/api/widget/v1/frame-policy", summary="Which sites may frame the chat (for nginx)", tag="Widget",
    auth="public", query=FramePolicyQuery, response=FramePolicy,
    extra_responses={403: "The query names the chatbot more than once, or in an encoded or odd spelling"})
async def frame_policy(ctx: Ctx) -> web.Response:
    """nginx asks this for every chat frame it serves, with the frame's own query string, and
    sends the answer as the frame's CSP `frame-ancestors`: the chatbot's allowed origins, any
    site when it has none, and only ourselves for an embed id nobody has. A query that could
    name two chatbots is refused (403), and nginx refuses the frame."""
    embed_id = embed_id_of_query(ctx.request.rel_url.raw_query_string)
    row = None
    if embed_id:
        async with ctx.request.app[POOL].acquire() as conn:
            row = await repository.chatbot_by_embed_id(conn, embed_id)
    if row is None:
        ancestors = "'self'"
    else:
        allowed = row["config"].get("allowed_origins") or []
        ancestors = " ".join(["'self'", *allowed]) if allowed else "*"
    return json_response(FramePolicy(frame_ancestors=ancestors), headers={"X-Frame-Ancestors": ancestors})
