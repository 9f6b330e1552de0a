"""structlog configured once; request_id / correlation_id live in contextvars.

Every log line of one chat turn carries the same ``correlation_id`` in every process: the
gateway binds it from the request, the bus copies it into each event and binds it again when
a handler runs.
"""
from __future__ import annotations

import logging
import sys
import uuid

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, get_contextvars

__all__ = ["configure_logging", "get_logger", "bind_contextvars", "bound_contextvars",
           "get_contextvars", "current_correlation_id"]

_configured = False


def configure_logging(service: str, level: str = "INFO") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper())
    for noisy in ("aiormq", "aio_pika", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # one write() per line: in the container every program shares one stdout through
        # supervisord, and a line written in two pieces could interleave with another's
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    bind_contextvars(service=service)


def get_logger(name: str | None = None):
    return structlog.get_logger(name)


def current_correlation_id() -> str:
    """The correlation id of the work in progress, or a new one for work that starts here."""
    cid = get_contextvars().get("correlation_id")
    return cid or uuid.uuid4().hex
