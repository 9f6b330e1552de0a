"""The baseline for `make bench`: one aiohttp process that calls the same provider in-process and
streams SSE, with nothing in between (no broker, no database, no other process).

    python -m scripts.bench_baseline <port>
"""
from __future__ import annotations

import json
import sys
import time
import uuid

from aiohttp import web
from aiohttp_sse import sse_response

from common.events import ChatbotSnapshot
from services.ai.coalesce import coalesce
from services.ai.providers import LocalProvider, PromptRequest, StreamResult

BOT = ChatbotSnapshot(chatbot_id=uuid.uuid4(), name="baseline", greeting="Hello from Acme!",
                      fallback_answer="Sorry, I do not know that yet, please email help@acme.example.")


async def chat(request: web.Request) -> web.StreamResponse:
    text = request.query.get("text", "hello")
    provider = LocalProvider()
    result = StreamResult()
    first: list[float] = []
    async with sse_response(request) as resp:
        async def emit(piece: str) -> None:
            if not first:
                first.append(time.time())
            await resp.send(json.dumps({"text": piece}), event="message.delta")

        full = await coalesce(provider.stream(PromptRequest(chatbot=BOT, message=text, history=[]), result),
                              emit, 0.04)
        await resp.send(json.dumps({"text": full, "timings": {"first_token_at": first[0] if first else None}}),
                        event="message.end")
    return resp


def main() -> None:
    app = web.Application()
    app.router.add_get("/chat", chat)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
