"""Map the SDKs' exceptions to ProviderError codes: what can be retried and what can't."""
from __future__ import annotations

import anthropic
import httpx2
import openai

from common.netguard import blocked
from services.ai.providers.base import (ADDRESS_BLOCKED, AUTH_FAILED, BAD_REQUEST, PROVIDER_UNAVAILABLE,
                                        RATE_LIMITED, REDIRECTED, STREAM_INTERRUPTED, TIMEOUT, ProviderError)


def _blocked(provider: str) -> ProviderError:
    # one answer whatever is behind the address: the error must not say what answers there
    return ProviderError(ADDRESS_BLOCKED, f"the {provider} base URL does not lead to a public internet address",
                         retryable=False)


def _from_status(provider: str, status: int, detail: str) -> ProviderError:
    if 300 <= status < 400:
        return ProviderError(REDIRECTED, f"{provider} answered with a redirect ({status}), which is not followed; "
                             "use the final URL as the base URL", retryable=False)
    if status == 429:
        return ProviderError(RATE_LIMITED, f"{provider} rate limit: {detail}")
    if status in (401, 403):
        return ProviderError(AUTH_FAILED, f"{provider} refused the API key: {detail}", retryable=False)
    if status == 408 or status >= 500:
        return ProviderError(PROVIDER_UNAVAILABLE, f"{provider} failed with {status}: {detail}")
    return ProviderError(BAD_REQUEST, f"{provider} rejected the request ({status}): {detail}", retryable=False)


def from_openai(exc: Exception, *, started: bool) -> ProviderError:
    """``started``: the stream had produced text, so a connection error means it broke mid-way."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(STREAM_INTERRUPTED if started else TIMEOUT, f"openai timed out: {exc}")
    if isinstance(exc, openai.APIConnectionError):
        if blocked(exc):
            return _blocked("openai")
        return ProviderError(STREAM_INTERRUPTED if started else PROVIDER_UNAVAILABLE,
                             f"openai connection failed: {exc.__cause__ or exc}")
    if isinstance(exc, openai.APIStatusError):
        return _from_status("openai", exc.status_code, str(exc.message)[:300])
    if isinstance(exc, openai.APIError):
        # an error object sent inside a 200 stream ({"error": {...}} in a data line)
        body = exc.body if isinstance(exc.body, dict) else {}
        kind = str(body.get("type") or body.get("code") or "")
        if "rate" in kind:
            return ProviderError(RATE_LIMITED, f"openai rate limit mid-stream: {exc.message}")
        return ProviderError(STREAM_INTERRUPTED if started else PROVIDER_UNAVAILABLE,
                             f"openai stream error: {exc.message}")
    if isinstance(exc, (httpx2.HTTPError, ValueError)):
        return ProviderError(STREAM_INTERRUPTED if started else PROVIDER_UNAVAILABLE, f"openai stream broke: {exc!r}")
    return ProviderError(PROVIDER_UNAVAILABLE, f"openai failed: {exc!r}")


_ANTHROPIC_RETRYABLE_TYPES = {"overloaded_error": PROVIDER_UNAVAILABLE, "api_error": PROVIDER_UNAVAILABLE,
                              "rate_limit_error": RATE_LIMITED, "timeout_error": TIMEOUT}


def from_anthropic(exc: Exception, *, started: bool) -> ProviderError:
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(STREAM_INTERRUPTED if started else TIMEOUT, f"anthropic timed out: {exc}")
    if isinstance(exc, anthropic.APIConnectionError):
        if blocked(exc):
            return _blocked("anthropic")
        return ProviderError(STREAM_INTERRUPTED if started else PROVIDER_UNAVAILABLE,
                             f"anthropic connection failed: {exc.__cause__ or exc}")
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code < 300:
            # ``event: error`` inside a 200 stream: the body's error type says what happened
            code = _ANTHROPIC_RETRYABLE_TYPES.get(exc.type or "")
            if code:
                return ProviderError(code, f"anthropic stream error {exc.type}: {exc.api_message}")
            return ProviderError(STREAM_INTERRUPTED if started else BAD_REQUEST,
                                 f"anthropic stream error {exc.type}: {exc.api_message}",
                                 retryable=started)
        return _from_status("anthropic", exc.status_code, str(exc.api_message or exc.message)[:300])
    if isinstance(exc, httpx2.TimeoutException):
        return ProviderError(STREAM_INTERRUPTED if started else TIMEOUT, f"anthropic timed out: {exc!r}")
    if isinstance(exc, (httpx2.HTTPError, ValueError)):
        # the SDK lets transport errors of a body being read through unwrapped
        return ProviderError(STREAM_INTERRUPTED if started else PROVIDER_UNAVAILABLE,
                             f"anthropic stream broke: {exc!r}")
    return ProviderError(PROVIDER_UNAVAILABLE, f"anthropic failed: {exc!r}")
