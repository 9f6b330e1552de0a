"""The baseline for `make bench`: one aiohttp process that calls the same provider in-process and
streams SSE, with nothing in between (no broker, no database, no other process).

    python -m scripts.bench_baseline <port> [<openai base url>]

``/chat?text=`` streams the local provider; ``/chat?provider=openai`` streams from the
OpenAI-compatible server given on the command line (the bench's loopback provider).
"""
from __future__ import annotations

import json
import sys
import time
import uuid

import openai
from aiohttp import web
from aiohttp_sse import sse_response

from common.events import ChatbotSnapshot
from services.ai.coalesce import coalesce
from services.ai.providers import LocalProvider, PromptRequest, StreamResult
from services.ai.providers.openai_chat import OpenAIProvider

BOT = ChatbotSnapshot(chatbot_id=uuid.uuid4(), name="baseline", greeting="Hello from Acme!",
                      fallback_answer="Sorry, I do not know that yet, please email help@acme.example.")
PROVIDERS = web.AppKey("providers", dict)


async def chat(request: web.Request) -> web.StreamResponse:
    text = request.query.get("text", "hello")
    name = request.query.get("provider", "local")
    provider = request.app[PROVIDERS][name]
    bot = BOT.model_copy(update={"provider": name, "model": "gpt-4o-mini" if name == "openai" else BOT.model})
    result = StreamResult()
    first: list[float] = []
    async with sse_response(request) as resp:
        async def emit(piece: str) -> None:
            if not first:
                first.append(time.time())
            await resp.send(json.dumps({"text": piece}), event="message.delta")

        req = PromptRequest(chatbot=bot, message=text, history=[], model=bot.model)
        full = await coalesce(provider.stream(req, result), emit, 0.04)
        await resp.send(json.dumps({"text": full, "timings": {"first_token_at": first[0] if first else None}}),
                        event="message.end")
    return resp


def main() -> None:
    app = web.Application()
    app[PROVIDERS] = {"local": LocalProvider()}
    if len(sys.argv) > 2:
        app[PROVIDERS]["openai"] = OpenAIProvider(openai.AsyncOpenAI(base_url=sys.argv[2], api_key="sk-bench",
                                                                      max_retries=0))
    app.router.add_get("/chat", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
