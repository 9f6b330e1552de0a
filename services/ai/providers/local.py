"""The offline default: answers from the best knowledge passages, or says plainly it can't.

It needs no API key, so a tenant trying the product sees a sensible reply at once. It streams
word by word, yielding to the event loop between words (no sleeps), like a real provider.
"""
from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator

from services.ai.analysis import classify_intent
from services.ai.providers.base import PromptRequest, StreamResult

_WORDS = re.compile(r"\S+\s*")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class LocalProvider:
    name = "local"

    def compose(self, request: PromptRequest, result: StreamResult) -> str:
        bot = request.chatbot
        intent = classify_intent(request.message)
        if intent == "greeting":
            return bot.greeting or "Hello! How can I help you today?"
        if intent == "thanks":
            return "You're welcome! Is there anything else I can help you with?"
        if intent == "goodbye":
            return "Goodbye, and thanks for stopping by!"
        if intent == "asks_for_human":
            return "I'll let our team know you'd like to talk to a person. Someone will get back to you here."
        passages = [p for p in request.passages if p.score >= bot.score_threshold]
        if not passages:
            return bot.fallback_answer
        result.citations = passages[:3]
        result.answered_from_knowledge = True
        best = passages[0]
        return f"{best.snippet.strip()} [1]"

    async def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]:
        text = self.compose(request, result)
        result.prompt_tokens = _tokens(request.message) + sum(_tokens(p.snippet) for p in request.passages)
        for word in _WORDS.findall(text):
            result.completion_tokens += 1
            yield word
            await asyncio.sleep(0)
