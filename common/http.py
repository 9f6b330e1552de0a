"""Internal HTTP between services (loopback in one container, service names when split)."""
from __future__ import annotations

from typing import Any

import aiohttp

from common.logging import get_contextvars
from common.settings import INTERNAL_KEY_HEADER
from common.web import RETRY_AFTER_S, ApiError, _log_unavailable


def unreachable(service: str, exc: BaseException) -> ApiError:
    """A callee that is down or broken: a 503 the client retries. What went wrong (addresses,
    ports, the exception) is logged, never answered: it maps our network for a caller."""
    _log_unavailable(service, exc)
    return ApiError(503, "unavailable", f"the {service} service is not reachable; try again",
                    headers={"Retry-After": str(RETRY_AFTER_S)})


def internal_session(internal_api_key: str | None, **kwargs) -> aiohttp.ClientSession:
    """The client session for calls to other services' /internal/ routes: every request it
    makes carries the internal credential (when one is configured)."""
    headers = {INTERNAL_KEY_HEADER: internal_api_key} if internal_api_key else {}
    return aiohttp.ClientSession(headers=headers, **kwargs)


class InternalClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, service: str):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.service = service

    async def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                      timeout: float = 10.0) -> Any:
        """JSON in, JSON out. The callee's 4xx errors pass through unchanged; a callee that is
        down or broken becomes a 503, so the caller's client knows to retry."""
        headers = {}
        ctx = get_contextvars()
        if "correlation_id" in ctx:
            headers["X-Correlation-ID"] = ctx["correlation_id"]
        try:
            async with self.session.request(method, self.base_url + path, json=json, params=params,
                                            headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                body = await resp.json(content_type=None)
                if 400 <= resp.status < 500:
                    err = (body or {}).get("error", {})
                    raise ApiError(resp.status, err.get("code", "error"), err.get("message", ""), err.get("details"))
                if resp.status >= 500:
                    raise ApiError(503, "unavailable", f"the {self.service} service failed; try again")
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise unreachable(self.service, exc) from None
