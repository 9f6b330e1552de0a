"""Anthropic Messages through the official SDK, streaming the raw server-sent events."""
from __future__ import annotations

from typing import AsyncIterator

import anthropic

from services.ai.prompt import build_prompt
from services.ai.providers.base import STREAM_INTERRUPTED, PromptRequest, ProviderError, StreamResult
from services.ai.providers.errors import from_anthropic


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: anthropic.AsyncAnthropic):
        self.client = client

    async def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]:
        prompt = request.prompt or build_prompt(request.chatbot, request.message, request.history,
                                                request.passages)
        started = False
        finished = False
        # The current Messages API and SDK have no temperature; the claude-3 family still takes it.
        extra = {"temperature": request.temperature} if request.model.startswith("claude-3") else None
        try:
            stream = await self.client.messages.create(
                model=request.model, system=prompt.anthropic_system(), messages=prompt.anthropic_messages(),
                max_tokens=request.max_tokens, stream=True, extra_body=extra)
            async for event in stream:
                kind = event.type
                if kind == "message_start":
                    usage = event.message.usage
                    result.prompt_tokens = ((usage.input_tokens or 0)
                                            + (getattr(usage, "cache_read_input_tokens", None) or 0)
                                            + (getattr(usage, "cache_creation_input_tokens", None) or 0))
                    result.completion_tokens = usage.output_tokens or 0
                elif kind == "content_block_delta":
                    if event.delta.type == "text_delta" and event.delta.text:
                        started = True
                        yield event.delta.text
                elif kind == "message_delta":
                    # usage here is cumulative for the whole message
                    if event.usage is not None and event.usage.output_tokens is not None:
                        result.completion_tokens = event.usage.output_tokens
                    if getattr(event.usage, "input_tokens", None):
                        result.prompt_tokens = event.usage.input_tokens
                    result.finish_reason = event.delta.stop_reason
                elif kind == "message_stop":
                    finished = True
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure maps to a code
            raise from_anthropic(exc, started=started) from exc
        if not finished:
            raise ProviderError(STREAM_INTERRUPTED, "the anthropic stream ended before message_stop")
