"""An OpenAI-compatible chat API (`model` = a chatbot id), reply cancelling, the cost ledger
and provider keys, for tenants.

`POST /api/v1/chat/completions` goes through the same pipeline as the widget (conversation,
knowledge, the chatbot's provider, analytics): the official `openai` SDK pointed at
`<base>/api/v1` streams a grounded answer with the tenant's API key as its key.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from common import events as ev
from common.web import POOL, ApiError, json_response
from services.gateway import clients, repository, service
from services.gateway.api import Ctx, Operations
from services.gateway.clients import CONVERSATION, INTERNAL
from services.gateway.models import NO_NUL, Out, Query, ReplyCancelled, Strict
from services.gateway.views import SETTINGS_KEY
from services.gateway.widget import HUB


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


TIMEOUT_S = 180.0


# --- models ----------------------------------------------------------------------------------

class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str = Field(max_length=100_000, pattern=NO_NUL)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or a list of text parts")

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    """The OpenAI request shape. Sampling parameters (temperature, max_tokens...) are the
    chatbot's settings and are ignored here, as are system messages: the persona is the
    chatbot's, not the caller's."""
    model_config = ConfigDict(extra="ignore", strict=True)
    model: str = Field(description="A chatbot id", min_length=1, max_length=100)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=200, pattern=NO_NUL)


class ChoiceMessage(Out):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(Out):
    index: int = 0
    message: ChoiceMessage
    finish_reason: Literal["stop"] = "stop"


class CompletionUsage(Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CitationOut(Out):
    title: str
    url: str | None = None
    snippet: str
    score: float


class ChatCompletion(Out):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    citations: list[CitationOut] = Field(default_factory=list, description="avatarchat extension")


class ModelOut(Out):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    name: str


class ModelList(Out):
    object: Literal["list"] = "list"
    data: list[ModelOut]


class CostQuery(Query):
    group_by: Literal["chatbot", "day", "model"] = "day"
    since: str | None = Field(None, alias="from", pattern=r"^\d{4}-\d{2}-\d{2}(T[0-9:.+Z-]+)?$",
                              description="ISO date or date-time (default: 30 days before `to`)")
    until: str | None = Field(None, alias="to", pattern=r"^\d{4}-\d{2}-\d{2}(T[0-9:.+Z-]+)?$",
                              description="ISO date (whole day included) or date-time (default: now)")


class CostTotals(Out):
    replies: int
    cached_replies: int
    failed_replies: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class CostRow(CostTotals):
    key: str | None


class CostReport(Out):
    data: list[CostRow]
    totals: CostTotals
    group_by: str
    since: str = Field(alias="from")
    until: str = Field(alias="to")
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ProviderKeyIn(Strict):
    api_key: str = Field(min_length=8, max_length=500, pattern=r"^[\x21-\x7e]+$")
    base_url: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s]+$",
                                 description="An OpenAI-compatible base URL (Ollama, vLLM, OpenRouter...)")


class ProviderKeyOut(Out):
    provider: str
    key_hint: str
    base_url: str | None
    created_at: str
    updated_at: str


# --- the OpenAI-compatible endpoint ----------------------------------------------------------

async def _chatbot_for_model(ctx: Ctx, model: str):
    try:
        chatbot_id = uuid.UUID(model)
    except ValueError:
        raise ApiError(404, "model_not_found", f"no chatbot {model!r}; list them at /api/v1/models") from None
    async with ctx.request.app[POOL].acquire() as conn:
        row = await repository.get_chatbot(conn, ctx.principal.tenant_id, chatbot_id)
    if row is None:
        raise ApiError(404, "model_not_found", f"no chatbot {model!r}; list them at /api/v1/models")
    return row


def _chunk(reply_id: str, model: str, created: int, delta: dict, finish: str | None = None) -> dict:
    return {"id": f"chatcmpl-{reply_id}", "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@op("POST", "/api/v1/chat/completions", summary="OpenAI-compatible chat with a chatbot", tag="Chat",
    need="chat", body=ChatCompletionIn, response=ChatCompletion, also_streams=True,
    extra_responses={200: "A chat.completion, or with `stream: true` an SSE stream of chat.completion.chunk"})
async def chat_completions(ctx: Ctx) -> web.StreamResponse:
    """`model` is a chatbot id. The last `user` message is the question; earlier user and
    assistant messages are the history. Streams with `stream: true` (`data: [DONE]` at the end).
    The answer carries the chatbot's citations in an extra `citations` field."""
    body: ChatCompletionIn = ctx.body
    chatbot = await _chatbot_for_model(ctx, body.model)
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user" or not turns[-1].text().strip():
        raise ApiError(422, "no_question", "the last message must be a non-empty user message")
    question = turns[-1].text().strip()
    if len(question) > 4000:
        raise ApiError(413, "message_too_long", "messages are limited to 4000 characters")
    history = [ev.HistoryMessage(role="visitor" if m.role == "user" else "assistant", text=m.text())
               for m in turns[:-1]]
    app = ctx.request.app
    limit = app[SETTINGS_KEY].completions_max_per_tenant
    with app[HUB].slots.hold({f"tenant:{chatbot['tenant_id']}": limit}, what="completions"):
        return await _answer(ctx, body, chatbot, question, history)


async def _answer(ctx: Ctx, body: ChatCompletionIn, chatbot, question: str,
                  history: list[ev.HistoryMessage]) -> web.StreamResponse:
    app = ctx.request.app
    created = await app[CONVERSATION].request("POST", "/internal/conversations", json={
        "tenant_id": str(chatbot["tenant_id"]), "chatbot_id": str(chatbot["id"]), "visitor_id": None})
    conversation_id = uuid.UUID(created["conversation_id"])
    queue = await app[HUB].open(conversation_id)  # listen before asking
    try:
        await service.accept_message(clients.deps(app), chatbot, conversation_id, uuid.UUID(created["visitor_id"]), question,
                             uuid.uuid4().hex, history=history, channel="api")
        if body.stream:
            return await _stream(ctx, queue, body, str(chatbot["id"]))
        return await _complete(queue, str(chatbot["id"]))
    finally:
        await app[HUB].close(conversation_id, queue)


async def _next(queue: asyncio.Queue, deadline: float) -> ev.Event:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ApiError(503, "reply_timeout", "no reply came in time")
    try:
        event = await asyncio.wait_for(queue.get(), remaining)
    except asyncio.TimeoutError:
        raise ApiError(503, "reply_timeout", "no reply came in time") from None
    if not isinstance(event, ev.Event):  # the server is shutting down
        raise ApiError(503, "unavailable", "the server is restarting; retry")
    return event


async def _complete(queue: asyncio.Queue, model: str) -> web.Response:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        event = await _next(queue, deadline)
        if isinstance(event, ev.AiReplyCompletedEvent):
            usage = event.usage
            return json_response(ChatCompletion(
                id=f"chatcmpl-{event.reply_id}", created=int(time.time()), model=model,
                choices=[Choice(message=ChoiceMessage(content=event.text))],
                usage=CompletionUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                                      total_tokens=usage.prompt_tokens + usage.completion_tokens),
                citations=[CitationOut(**c.model_dump()) for c in event.citations]))
        if isinstance(event, ev.AiReplyFailedEvent):
            raise ApiError(503, event.code, event.message)


async def _stream(ctx: Ctx, queue: asyncio.Queue, body: ChatCompletionIn, model: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(ctx.request)
    created = int(time.time())
    deadline = time.monotonic() + TIMEOUT_S
    sent = 0
    reply_id = "pending"

    async def send(data: dict | str) -> None:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        await resp.write(f"data: {payload}\n\n".encode())

    try:
        while True:
            try:
                event = await _next(queue, deadline)
            except ApiError as exc:
                await send({"error": {"message": exc.message, "type": "server_error", "code": exc.code}})
                break
            if isinstance(event, ev.AiReplyStartedEvent):
                reply_id = str(event.reply_id)
                if sent == 0:
                    await send(_chunk(reply_id, model, created, {"role": "assistant", "content": ""}))
            elif isinstance(event, ev.AiReplyChunkEvent):
                # only text past what was sent: a provider that restarted does not repeat itself
                if event.offset + len(event.text) > sent:
                    await send(_chunk(reply_id, model, created, {"content": event.text[max(0, sent - event.offset):]}))
                    sent = event.offset + len(event.text)
            elif isinstance(event, ev.AiReplyCompletedEvent):
                if len(event.text) > sent:  # chunks lost on the way: the completion repairs them
                    await send(_chunk(reply_id, model, created, {"content": event.text[sent:]}))
                await send(_chunk(str(event.reply_id), model, created, {}, "stop"))
                if body.stream_options and body.stream_options.include_usage:
                    u = event.usage
                    await send({**_chunk(str(event.reply_id), model, created, {}), "choices": [],
                                "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                                          "total_tokens": u.prompt_tokens + u.completion_tokens}})
                break
            elif isinstance(event, ev.AiReplyFailedEvent):
                await send({"error": {"message": event.message, "type": "server_error", "code": event.code}})
                break
        await send("[DONE]")
    except ConnectionResetError:
        pass
    return resp


@op("GET", "/api/v1/models", summary="Your chatbots, as OpenAI models", tag="Chat", need="chat", response=ModelList)
async def list_models(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.list_chatbots(conn, ctx.principal.tenant_id, None, 1000)
    return json_response(ModelList(data=[ModelOut(id=str(r["id"]), created=int(r["created_at"].timestamp()),
                                                  owned_by="avatarchat", name=r["name"]) for r in rows]))


# --- cancelling, costs, provider keys --------------------------------------------------------

@op("POST", "/api/v1/replies/{reply_id}/cancel", summary="Stop a reply in flight", tag="Chat", need="chat",
    response=ReplyCancelled, status=202, extra_responses={409: "The reply already ended"})
async def cancel_reply(ctx: Ctx) -> web.Response:
    """The visitor sees an `error` event with code `cancelled`; what was streamed is kept."""
    reply_id = ctx.request.match_info["reply_id"]
    # only the tenant's own replies: 404 for anyone else's, as for anything else of theirs
    await service.cancel_reply(clients.deps(ctx.request.app), ctx.principal.tenant_id, reply_id)
    return json_response(ReplyCancelled(reply_id=reply_id), status=202)


@op("GET", "/api/v1/usage/costs", summary="Tokens and cost, by chatbot, day or model", tag="Usage", query=CostQuery,
    response=CostReport)
async def costs(ctx: Ctx) -> web.Response:
    q: CostQuery = ctx.query
    params = {"tenant_id": str(ctx.principal.tenant_id), "group_by": q.group_by}
    if q.since:
        params["from"] = q.since
    if q.until:
        params["to"] = q.until
    body = await ctx.request.app[INTERNAL]["ai"].request("GET", "/internal/usage", params=params)
    for row in body["data"]:
        row["key"] = None if row["key"] is None else str(row["key"])
    return json_response(CostReport.model_validate(body))


def _provider_path(ctx: Ctx) -> str:
    provider = ctx.request.match_info["provider"]
    if provider not in ("openai", "anthropic"):
        raise ApiError(404, "not_found", "provider must be openai or anthropic")
    return f"/internal/tenants/{ctx.principal.tenant_id}/provider-keys/{provider}"


@op("PUT", "/api/v1/provider-keys/{provider}", summary="Store your own provider API key (encrypted)",
    tag="Providers", need="manage", body=ProviderKeyIn, response=ProviderKeyOut)
async def put_provider_key(ctx: Ctx) -> web.Response:
    """Your key is used instead of the platform's for your chatbots. It is stored encrypted and
    never returned: reads show only a hint like `sk-...9f3a`."""
    body = await ctx.request.app[INTERNAL]["ai"].request("PUT", _provider_path(ctx),
                                                         json=ctx.body.model_dump())
    return json_response(ProviderKeyOut(**body["data"]))


@op("GET", "/api/v1/provider-keys/{provider}", summary="Which key is stored (a hint, never the key)",
    tag="Providers", response=ProviderKeyOut)
async def get_provider_key(ctx: Ctx) -> web.Response:
    body = await ctx.request.app[INTERNAL]["ai"].request("GET", _provider_path(ctx))
    return json_response(ProviderKeyOut(**body["data"]))


@op("DELETE", "/api/v1/provider-keys/{provider}", summary="Forget your key (the platform's is used again)",
    tag="Providers", need="manage", status=204)
async def delete_provider_key(ctx: Ctx) -> web.Response:
    client = ctx.request.app[INTERNAL]["ai"]
    async with client.session.delete(client.base_url + _provider_path(ctx)) as resp:
        if resp.status == 404:
            raise ApiError(404, "not_found", "no key is stored for this provider")
        if resp.status >= 400:
            raise ApiError(503, "unavailable", "the ai service failed; try again")
    return web.Response(status=204)
