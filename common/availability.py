"""Telling "a dependency is away" from "this work is broken".

A database restarting, the broker dropping connections or another service answering 503
says nothing about the message or request being handled: the same work succeeds once the
dependency is back. Such failures never use up an event's retry budget or reach the
dead-letter queue (the bus holds its consumers until the dependency answers again, see
``common.bus``), and the public API answers them with 503 and ``Retry-After`` (``common.web``).
Everything else, a bug, a malformed event, a constraint violation, is a real failure.
"""
from __future__ import annotations

import asyncio
import errno

import aiormq.exceptions
import asyncpg
from aio_pika import exceptions as pika_exceptions

DATABASE = "database"
BROKER = "broker"

# SQLSTATEs that mean "the server is going away or not ready", not "your query is wrong":
# class 08 (connection exceptions), 57P01-57P03 (admin/crash shutdown, cannot connect now),
# 53300 (too many connections), 55000 is NOT here (object not in prerequisite state).
_DATABASE_STATES = ("08", "57P01", "57P02", "57P03", "53300")
_NETWORK_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
                   errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENOTCONN}


class DependencyUnavailable(Exception):
    """Raised where code knows a dependency is away (e.g. an internal service's 503)."""

    def __init__(self, dependency: str, detail: str = ""):
        super().__init__(f"{dependency} is unavailable" + (f": {detail}" if detail else ""))
        self.dependency = dependency
        self.detail = detail


def _one(exc: BaseException) -> str | None:
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return DATABASE if state.startswith(_DATABASE_STATES) else None
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError,
                        asyncpg.exceptions.InternalClientError)):
        # "connection is closed", "the underlying connection is closed", pool closing...
        return DATABASE
    if isinstance(exc, (pika_exceptions.AMQPError, aiormq.exceptions.AMQPError)):
        return BROKER
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return DATABASE if _from_asyncpg(exc) else "network"
    if isinstance(exc, (ConnectionError, asyncio.TimeoutError)):
        return DATABASE if _from_asyncpg(exc) else "network"
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if status == 503 and type(exc).__name__ == "ApiError":  # an internal service is down (common.http)
        return "service"
    return None


def _from_asyncpg(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if "asyncpg" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def unavailable_dependency(exc: BaseException) -> str | None:
    """The dependency whose absence caused ``exc`` (following causes), or None for a real failure."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _one(current)
        if found:
            return found
        current = current.__cause__ or current.__context__
    return None
