"""OpenAI chat completions through the official SDK, streaming. Any OpenAI-compatible base URL
works (Ollama, vLLM, OpenRouter...)."""
from __future__ import annotations

from typing import AsyncIterator

import openai

from services.ai.prompt import build_prompt
from services.ai.providers.base import STREAM_INTERRUPTED, PromptRequest, ProviderError, StreamResult
from services.ai.providers.errors import from_openai

OFFICIAL_HOST = "api.openai.com"


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: openai.AsyncOpenAI):
        self.client = client
        # The official API wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers know max_tokens.
        self._official = OFFICIAL_HOST in str(client.base_url)

    async def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]:
        prompt = request.prompt or build_prompt(request.chatbot, request.message, request.history,
                                                request.passages)
        limit = ({"max_completion_tokens": request.max_tokens} if self._official
                 else {"max_tokens": request.max_tokens})
        started = False
        finished = False
        try:
            stream = await self.client.chat.completions.create(
                model=request.model, messages=prompt.openai_messages(), temperature=request.temperature,
                stream=True, stream_options={"include_usage": True}, **limit)
            async for chunk in stream:
                if chunk.usage is not None:
                    result.prompt_tokens = chunk.usage.prompt_tokens or 0
                    result.completion_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices or ():
                    if choice.index:
                        continue
                    content = choice.delta.content if choice.delta is not None else None
                    if content:
                        started = True
                        yield content
                    if choice.finish_reason:
                        finished = True
                        result.finish_reason = choice.finish_reason
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure maps to a code
            raise from_openai(exc, started=started) from exc
        if not finished:
            raise ProviderError(STREAM_INTERRUPTED, "the openai stream ended before the reply finished")
