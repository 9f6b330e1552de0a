"""The provider interface: ``stream(request, result)`` async-yields text pieces and fills
``result`` (usage, citations) as it goes; failures are ``ProviderError`` with a stable code."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

from common.events import ChatbotSnapshot, Citation, HistoryMessage


class ProviderError(Exception):
    """A provider failed. ``retryable`` errors (rate limits, 5xx, timeouts, broken streams)
    may succeed on a second try; the others (bad key, unknown model) won't."""

    def __init__(self, code: str, message: str, *, retryable: bool = True):
        super().__init__(message)
        self.code = code
        self.retryable = retryable


# The codes a ProviderError carries, and so what AiReplyFailedEvent.code can say.
RATE_LIMITED = "rate_limited"
PROVIDER_UNAVAILABLE = "provider_unavailable"      # 5xx, overloaded, connection refused
TIMEOUT = "timeout"                                # the provider's own request timed out
FIRST_TOKEN_TIMEOUT = "first_token_timeout"        # no first token within the per-attempt limit
DEADLINE_EXCEEDED = "deadline_exceeded"            # the whole reply ran out of time
STREAM_INTERRUPTED = "stream_interrupted"          # the stream broke in the middle
AUTH_FAILED = "auth_failed"                        # 401/403: a wrong or missing key
BAD_REQUEST = "bad_request"                        # 400/404/422: unknown model, bad params
NOT_CONFIGURED = "provider_not_configured"         # no key, or an unknown provider name
ADDRESS_BLOCKED = "provider_address_blocked"       # the base URL leads to a non-public address
REDIRECTED = "provider_redirected"                 # a 3xx: redirects are never followed
CANCELLED = "cancelled"


@dataclass
class Passage:
    """A knowledge passage as the knowledge service's search returns it."""
    title: str
    snippet: str
    score: float
    url: str | None = None
    document_id: str | None = None
    chunk_id: str | None = None
    heading_path: list[str] | str | None = None

    def citation(self) -> Citation:
        return Citation(title=self.title, url=self.url, snippet=self.snippet, score=self.score)


@dataclass
class PromptRequest:
    chatbot: ChatbotSnapshot
    message: str
    history: list[HistoryMessage]
    passages: list[Passage] = field(default_factory=list)
    # which model this attempt uses (the chatbot's, or the fallback's)
    model: str = ""
    prompt: "object | None" = None  # services.ai.prompt.Prompt, built once per reply
    # the standalone rewrite of a follow-up that retrieval searched for, if an LLM wrote one
    retrieval_query: str = ""
    # a short side call (the query rewrite) asks for less than the chatbot's settings
    max_tokens_limit: int | None = None
    temperature_override: float | None = None

    @property
    def temperature(self) -> float:
        return self.chatbot.temperature if self.temperature_override is None else self.temperature_override

    @property
    def max_tokens(self) -> int:
        return self.chatbot.max_tokens if self.max_tokens_limit is None else self.max_tokens_limit


@dataclass
class StreamResult:
    """Filled in by the provider while it streams; read once the stream is exhausted."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    citations: list[Citation] = field(default_factory=list)
    answered_from_knowledge: bool = False
    # the local provider answered with the persona's fallback text (nothing relevant found)
    used_fallback_text: bool = False
    finish_reason: str | None = None


class Provider(Protocol):
    name: str

    def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]: ...
