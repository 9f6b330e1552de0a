"""The one refusal a use case raises. service.py modules have no aiohttp: they raise
``ServiceError`` with the HTTP status it means, and ``common.web``'s error middleware answers
it with the project's JSON error body, in every service alike."""
from __future__ import annotations

import uuid
from typing import Any


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None, *,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}  # e.g. Retry-After on a 503


def unavailable(message: str, retry_after_s: int = 2) -> ServiceError:
    """A 503 the caller should retry: the platform could not take the request just now."""
    return ServiceError(503, "unavailable", message, headers={"Retry-After": str(retry_after_s)})


def parse_uuid(value: str | None, what: str, *, status: int = 404) -> uuid.UUID:
    """``value`` as a UUID, or a ``ServiceError``: 404 "no such <what>" for an id in a path (a
    malformed id names nothing), or ``status=400`` "<what> must be a UUID" for a parameter."""
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        if status == 404:
            raise ServiceError(404, "not_found", f"no such {what}") from None
        raise ServiceError(status, "bad_request", f"{what} must be a UUID") from None
