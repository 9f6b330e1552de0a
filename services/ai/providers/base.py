from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

from common.events import ChatbotSnapshot, Citation, HistoryMessage


class ProviderError(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass
class PromptRequest:
    chatbot: ChatbotSnapshot
    message: str
    history: list[HistoryMessage]
    passages: list[Citation] = field(default_factory=list)


@dataclass
class StreamResult:
    """Filled in by the provider while it streams; read once the stream is exhausted."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    citations: list[Citation] = field(default_factory=list)
    answered_from_knowledge: bool = False


class Provider(Protocol):
    name: str

    def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]: ...
