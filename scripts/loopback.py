"""Loopback stand-ins for the LLM providers and the knowledge service, speaking their real
wire formats: OpenAI chat.completions SSE (``data: {chat.completion.chunk}`` lines, a usage
chunk, ``data: [DONE]``), Anthropic Messages SSE (``event: message_start`` ... ``message_stop``,
``event: error``), and both providers' JSON error bodies.

Each fake plays a script: a list of behaviours, one per incoming request (the last one repeats).
The tests (tests/conftest.py's fixtures), the deployment test's stand-in and the benchmarks
all take them from here.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Ok:
    pieces: list[str]
    prompt_tokens: int = 42
    completion_tokens: int | None = None


@dataclass
class Slow:
    """Stream ``pieces`` with ``gap_s`` between them, like a real model thinking."""
    pieces: list[str]
    gap_s: float = 0.2
    first_s: float | None = None  # the wait before the first piece (default: gap_s)
    prompt_tokens: int = 42
    completion_tokens: int | None = None


@dataclass
class Status:
    status: int
    retry_after: str | None = None


@dataclass
class Redirect:
    """A 307 (keeps the POST and its body) to somewhere else, e.g. an internal service."""
    location: str


@dataclass
class SlowFirst:
    """Hold the response before the first token until released (or ``hold_s`` passes)."""
    pieces: list[str]
    hold_s: float = 30.0


@dataclass
class Break:
    """Send ``pieces`` then drop the connection in the middle of the chunked body."""
    pieces: list[str]


@dataclass
class EndsEarly:
    """Send ``pieces`` and end the body cleanly, without the stream's end marker."""
    pieces: list[str]


@dataclass
class StreamError:
    """A 200 stream that sends ``pieces`` then the provider's in-stream error object."""
    pieces: list[str]
    kind: str = "overloaded_error"


@dataclass
class Hang:
    """Send ``pieces`` and then nothing until released: a stalled stream."""
    pieces: list[str]
    hold_s: float = 30.0


@dataclass
class FakeProvider:
    script: list = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: object = None

    def next(self):
        index = len(self.requests) - 1
        return self.script[min(index, len(self.script) - 1)]

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


async def _sse_response(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream; charset=utf-8",
                                                  "Cache-Control": "no-cache"})
    await resp.prepare(request)
    return resp


async def _drop(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
    # Kill the socket mid-body: the client sees a chunked body that never finished.
    request.transport.close()
    raise ConnectionResetError("dropped by the fake")


# --- OpenAI ----------------------------------------------------------------------------------

OPENAI_ERRORS = {
    429: {"error": {"message": "Rate limit reached for gpt-4o-mini in organization org-test on tokens per min "
                               "(TPM): Limit 200000, Used 199990, Requested 500. Please try again in 150ms.",
                    "type": "tokens", "param": None, "code": "rate_limit_exceeded"}},
    500: {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error", "param": None, "code": None}},
    503: {"error": {"message": "The engine is currently overloaded, please try again later.",
                    "type": "server_error", "param": None, "code": None}},
    401: {"error": {"message": "Incorrect API key provided: sk-wrong. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
    404: {"error": {"message": "The model `gpt-nope` does not exist or you do not have access to it.",
                    "type": "invalid_request_error", "param": None, "code": "model_not_found"}},
}


async def _end_abnormally(behaviour, fake: "FakeProvider", request: web.Request,
                          resp: web.StreamResponse) -> web.StreamResponse:
    """The ways a provider's stream goes wrong after some text, alike for both providers."""
    if isinstance(behaviour, Break):
        return await _drop(request, resp)
    if isinstance(behaviour, Hang):
        try:
            await asyncio.wait_for(fake.release.wait(), behaviour.hold_s)
        except asyncio.TimeoutError:
            pass
        return resp
    await resp.write_eof()  # EndsEarly: a clean end without the stream's end marker
    return resp


def _openai_chunk(model: str, choices: list, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "service_tier": "default", "system_fingerprint": "fp_f33640a400",
            "choices": choices, "usage": usage}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def _openai_delta(model: str, content: str | None = None, role: bool = False, finish: str | None = None) -> bytes:
    delta: dict = {}
    if role:
        delta = {"role": "assistant", "content": "", "refusal": None}
    elif content is not None:
        delta = {"content": content}
    return _openai_chunk(model, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])


def openai_app(fake: FakeProvider) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append({k.lower(): v for k, v in request.headers.items()})
        behaviour = fake.next()
        model = body.get("model", "gpt-4o-mini")
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if isinstance(behaviour, Redirect):
            raise web.HTTPTemporaryRedirect(location=behaviour.location)
        if isinstance(behaviour, Status):
            headers = {"x-request-id": "req_fake"}
            if behaviour.retry_after:
                headers["retry-after"] = behaviour.retry_after
            return web.json_response(OPENAI_ERRORS.get(behaviour.status, OPENAI_ERRORS[500]),
                                     status=behaviour.status, headers=headers)
        resp = await _sse_response(request)
        if isinstance(behaviour, SlowFirst):
            try:
                await asyncio.wait_for(fake.release.wait(), behaviour.hold_s)
            except asyncio.TimeoutError:
                pass
        await resp.write(_openai_delta(model, role=True))
        for index, piece in enumerate(behaviour.pieces):
            if isinstance(behaviour, Slow):
                first = behaviour.first_s if behaviour.first_s is not None else behaviour.gap_s
                await asyncio.sleep(first if index == 0 else behaviour.gap_s)
            await resp.write(_openai_delta(model, piece))
        if isinstance(behaviour, (Break, Hang, EndsEarly)):
            return await _end_abnormally(behaviour, fake, request, resp)
        if isinstance(behaviour, StreamError):
            error = {"error": {"message": "The server had an error processing your request.",
                               "type": "server_error", "param": None, "code": None}}
            await resp.write(f"data: {json.dumps(error)}\n\n".encode())
            await resp.write_eof()
            return resp
        await resp.write(_openai_delta(model, finish="stop"))
        if include_usage:
            completion = len(behaviour.pieces) if behaviour.completion_tokens is None else behaviour.completion_tokens
            await resp.write(_openai_chunk(model, [], {
                "prompt_tokens": behaviour.prompt_tokens, "completion_tokens": completion,
                "total_tokens": behaviour.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    return app


# --- Anthropic -------------------------------------------------------------------------------

ANTHROPIC_ERRORS = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "model: claude-nope"),
}


def _anthropic_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def anthropic_app(fake: FakeProvider) -> web.Application:
    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append({k.lower(): v for k, v in request.headers.items()})
        behaviour = fake.next()
        model = body.get("model", "claude-3-5-haiku-20241022")
        if isinstance(behaviour, Redirect):
            raise web.HTTPTemporaryRedirect(location=behaviour.location)
        if isinstance(behaviour, Status):
            kind, message = ANTHROPIC_ERRORS.get(behaviour.status, ANTHROPIC_ERRORS[500])
            headers = {"request-id": "req_fake"}
            if behaviour.retry_after:
                headers["retry-after"] = behaviour.retry_after
            return web.json_response({"type": "error", "error": {"type": kind, "message": message},
                                      "request_id": "req_fake"}, status=behaviour.status, headers=headers)
        resp = await _sse_response(request)
        prompt_tokens = getattr(behaviour, "prompt_tokens", 42)
        await resp.write(_anthropic_event("message_start", {"type": "message_start", "message": {
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}}}))
        if isinstance(behaviour, SlowFirst):
            try:
                await asyncio.wait_for(fake.release.wait(), behaviour.hold_s)
            except asyncio.TimeoutError:
                pass
        await resp.write(_anthropic_event("content_block_start", {
            "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        await resp.write(_anthropic_event("ping", {"type": "ping"}))
        for piece in behaviour.pieces:
            await resp.write(_anthropic_event("content_block_delta", {
                "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}))
        if isinstance(behaviour, (Break, Hang, EndsEarly)):
            return await _end_abnormally(behaviour, fake, request, resp)
        if isinstance(behaviour, StreamError):
            await resp.write(_anthropic_event("error", {"type": "error", "error": {
                "type": behaviour.kind, "message": "Overloaded"}}))
            await resp.write_eof()
            return resp
        await resp.write(_anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        completion = len(behaviour.pieces) if behaviour.completion_tokens is None else behaviour.completion_tokens
        await resp.write(_anthropic_event("message_delta", {
            "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": completion}}))
        await resp.write(_anthropic_event("message_stop", {"type": "message_stop"}))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


# --- knowledge -------------------------------------------------------------------------------

@dataclass
class FakeKnowledge:
    """The knowledge service's ``POST /internal/search``: returns ``passages`` (dicts with
    title, url, snippet, score) and ``version``."""
    passages: list[dict] = field(default_factory=list)
    version: int = 1
    requests: list[dict] = field(default_factory=list)
    status: int = 200
    server: object = None

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def knowledge_app(fake: FakeKnowledge) -> web.Application:
    async def search(request: web.Request) -> web.Response:
        body = await request.json()
        fake.requests.append(body)
        if fake.status != 200:
            return web.json_response({"error": {"code": "boom", "message": "failed"}}, status=fake.status)
        data = []
        for number, passage in enumerate(fake.passages[: body.get("top_k") or None]):
            if passage.get("score", 1.0) < body.get("score_threshold", 0):
                continue
            data.append({"title": passage["title"], "url": passage.get("url"), "snippet": passage["snippet"],
                         "score": passage.get("score", 1.0), "document_id": f"00000000-0000-0000-0000-{number:012d}",
                         "chunk_id": f"c{number}", "heading_path": passage.get("heading_path", [])})
        return web.json_response({"data": data, "knowledge_version": fake.version})

    app = web.Application()
    app.router.add_post("/internal/search", search)
    return app
