"""The app factory helper every service builds on.

``make_app`` gives a service: JSON error bodies ``{"error": {"code", "message", "details"}}``,
request and correlation ids bound to every log line, ``/health`` (its database and the broker,
plus whatever extra checks the service adds) and ``/metrics``. ``service_context`` is the
``cleanup_ctx`` that opens the pool (running migrations), connects the bus, starts consumers
and the outbox relay, and on shutdown stops consuming and lets in-flight work finish.
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import urlsplit

import aio_pika
import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from common import metrics
from common.availability import DATABASE, unavailable_dependency
from common.bus import Bus
from common.db import OutboxRelay, create_pool
from common.errors import ServiceError
from common.handlers import Registry, subscribe_all
from common.logging import bind_contextvars, configure_logging, get_logger
from common.settings import INTERNAL_KEY_HEADER, ServiceSettings, listen_problem

log = get_logger(__name__)

SETTINGS = web.AppKey("settings", ServiceSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
BUS = web.AppKey("bus", Bus)
HEALTH_CHECKS = web.AppKey("health_checks", dict)
# what a service's bootstrap(settings, pool, bus) built: its handlers' and views' dependencies
DEPS = web.AppKey("deps", object)
SHUTDOWN_HOOKS = web.AppKey("shutdown_hooks", list)

MAX_JSON_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)


class ApiError(web.HTTPException):
    """An error with the project's JSON body; raise it anywhere in a request."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict | None = None):
        self.status_code = status
        super().__init__(headers=headers)
        self.code = code
        self.message = message
        self.details = details
        self.content_type = "application/json"
        self.text = json.dumps({"error": {"code": code, "message": message, "details": details}})


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "details": details}},
                             status=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "body_timeout", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
                 503: "unavailable"}


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def context_middleware(request: web.Request, handler):
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    correlation_id = request.headers.get("X-Correlation-ID") or request_id
    bind_contextvars(request_id=request_id, correlation_id=correlation_id)
    service = request.app[SETTINGS].service
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers.setdefault("X-Request-ID", request_id)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = _route_name(request)
        metrics.HTTP_REQUESTS.labels(service, request.method, route, str(status)).inc()
        metrics.HTTP_LATENCY.labels(service, route).observe(time.perf_counter() - started)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError:
        raise
    except ServiceError as exc:  # a use case's refusal (service.py has no aiohttp)
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason, headers={
            k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")})
    except ValidationError as exc:
        return error_response(422, "validation_error", "the request is not valid",
                              json.loads(exc.json(include_url=False, include_context=False)))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns surprises into a JSON 500
        dependency = unavailable_dependency(exc)
        if dependency is not None:
            # the database or another service is away for a moment: the client should retry
            _log_unavailable(dependency, exc)
            return error_response(503, "unavailable",
                                  "the service is briefly unavailable; please retry in a few seconds",
                                  {"dependency": dependency}, headers={"Retry-After": str(RETRY_AFTER_S)})
        log.exception("unhandled_error", path=request.path)
        return error_response(500, "internal_error", "something went wrong on our side")


RETRY_AFTER_S = 5
_last_unavailable_log: dict[str, float] = {}


def _log_unavailable(dependency: str, exc: BaseException) -> None:
    """At most one line per dependency every 10 s: an outage must not flood the log."""
    now = time.monotonic()
    if now - _last_unavailable_log.get(dependency, -1e9) >= 10:
        _last_unavailable_log[dependency] = now
        log.warning("dependency_unavailable", dependency=dependency, error=repr(exc)[:300])


@web.middleware
async def internal_auth_middleware(request: web.Request, handler):
    """Every /internal/ route needs the shared internal credential when one is configured
    (always in production), so a service reachable from other containers serves only our own."""
    expected = request.app[SETTINGS].internal_api_key
    if expected and (request.path == "/internal" or request.path.startswith("/internal/")):
        given = request.headers.get(INTERNAL_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("internal_request_refused", path=request.path, remote=request.remote,
                        reason="missing credential" if not given else "wrong credential")
            return error_response(401, "unauthorized", "internal routes need the internal credential",
                                  {"header": INTERNAL_KEY_HEADER})
    return await handler(request)


def json_body_cap(max_chars: int) -> int:
    """The body cap that fits ``max_chars`` characters of text in any JSON spelling: an
    astral character written as a ``\\ud83d\\ude00`` escape pair takes 12 bytes."""
    return 12 * max_chars + 64 * 1024


async def read_body(request: web.Request, max_bytes: int, *, timeout_s: float | None = None,
                    too_large: str | None = None) -> bytes:
    """The whole body, however many TCP writes it arrived in: 413 past ``max_bytes`` (before
    reading when ``Content-Length`` says so), 408 when it takes longer than ``timeout_s``
    (default: the service's ``BODY_TIMEOUT_SECONDS``), so a trickled body holds no handler."""
    timeout_s = timeout_s or request.app[SETTINGS].body_timeout_s
    message = too_large or f"the body is larger than {max_bytes} bytes"
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", message, {"max_bytes": max_bytes})
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for piece in request.content.iter_any():
                body.extend(piece)
                if len(body) > max_bytes:
                    raise ApiError(413, "payload_too_large", message, {"max_bytes": max_bytes})
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout_s:g} seconds",
                       headers={"Connection": "close"}) from None
    return bytes(body)


async def read_json(request: web.Request, model: type[M], *, max_bytes: int = MAX_JSON_BYTES) -> M:
    """Parse a JSON body into ``model`` with clear 4xx errors for every way it can be wrong."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, max_bytes)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", "the body is not valid JSON", str(exc)[:200]) from None
    problem = _text_problem(data)
    if problem:
        raise ApiError(400, "bad_text", problem)
    try:
        return model.model_validate_json(raw)  # JSON mode: strict models still take UUIDs as text
    except ValidationError as exc:
        raise ApiError(422, "validation_error", "the request is not valid",
                       json.loads(exc.json(include_url=False, include_context=False))) from None


MAX_JSON_DEPTH = 32


def _text_problem(data: Any, depth: int = 0) -> str | None:
    """Refuse what we could not store faithfully: NUL characters, lone surrogates, deep nesting."""
    if depth > MAX_JSON_DEPTH:
        return f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(data, str):
        if "\x00" in data:
            return "text must not contain NUL characters"
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid unicode (no lone surrogates)"
        return None
    if isinstance(data, dict):
        items = list(data.keys()) + list(data.values())
    elif isinstance(data, list):
        items = data
    else:
        return None
    for item in items:
        problem = _text_problem(item, depth + 1)
        if problem:
            return problem
    return None


def json_response(data: Any, status: int = 200, **kwargs) -> web.Response:
    if isinstance(data, BaseModel):
        body = data.model_dump_json()
    else:
        body = json.dumps(data, default=str)
    return web.Response(text=body, status=status, content_type="application/json", **kwargs)


async def health(request: web.Request) -> web.Response:
    checks: dict[str, dict] = {}
    for name, check in request.app[HEALTH_CHECKS].items():
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(check(request.app), timeout=3)
            checks[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1),
                            **(detail or {})}
        except Exception as exc:  # noqa: BLE001 - a failed check is reported, not raised
            checks[name] = {"ok": False, "error": repr(exc)[:300]}
            # the operator reads why a container is unhealthy in its log
            log.warning("health_check_failed", check=name, error=repr(exc)[:300])
    ok = all(c["ok"] for c in checks.values())
    body = {"status": "ok" if ok else "degraded", "service": request.app[SETTINGS].service,
            "instance": request.app[SETTINGS].instance_id, "checks": checks}
    return web.json_response(body, status=200 if ok else 503)


async def metrics_view(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _check_db(app: web.Application) -> dict:
    await app[POOL].fetchval("SELECT 1")
    return {}


async def _check_bus(app: web.Application) -> dict:
    if not app[BUS].is_connected:
        raise RuntimeError("not connected to RabbitMQ")
    return {}


async def _check_consumers(app: web.Application) -> dict:
    held = app[BUS].held
    if held:
        raise RuntimeError(f"taking no events while waiting for: {', '.join(f'{d} ({s} s)' for d, s in held.items())}")
    return {}


def _outbox_check(relay: OutboxRelay):
    async def check(app: web.Application) -> dict:
        if not relay.listening:
            # still delivered, by the one-second poll: slower, not lost
            raise RuntimeError("not listening for outbox notifications; events wait for the poll")
        return {}
    return check


def make_app(settings: ServiceSettings, *, middlewares: list | None = None,
             client_max_size: int = 1024 ** 2) -> web.Application:
    configure_logging(settings.service, settings.log_level)
    app = web.Application(middlewares=[context_middleware, error_middleware, internal_auth_middleware,
                                       *(middlewares or [])],
                          client_max_size=client_max_size)
    app[SETTINGS] = settings
    app[HEALTH_CHECKS] = {}
    app[SHUTDOWN_HOOKS] = []
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics_view)
    app.on_shutdown.append(_stop_consuming)
    return app


async def _stop_consuming(app: web.Application) -> None:
    """SIGTERM: take no new events, let in-flight ones finish, then run the service's hooks
    (the gateway closes its SSE streams there)."""
    if BUS in app:
        await app[BUS].stop_consuming(timeout=app[SETTINGS].shutdown_timeout)
    for hook in app[SHUTDOWN_HOOKS]:
        await hook(app)


Bootstrap = Callable[[ServiceSettings, asyncpg.Pool, Bus], Awaitable[Any] | Any]


def service_context(migrations: Path, *, pool: asyncpg.Pool | None = None, bus: Bus | None = None,
                    registry: Registry | None = None, bootstrap: Bootstrap | None = None,
                    vector: bool = False, outbox: bool = True):
    """cleanup_ctx: database (migrated), bus, the service's deps, its consumers and the outbox
    relay, torn down in reverse.

    ``bootstrap(settings, pool, bus)`` builds the deps (stored under ``DEPS``; an async
    ``close()`` on them runs at shutdown, after consuming stopped); every handler of
    ``registry`` is subscribed with them. Injected ``pool``/``bus`` are used as they are and
    not closed (tests own them).
    """

    async def ctx(app: web.Application):
        settings = app[SETTINGS]
        own_pool = pool is None
        app[POOL] = pool or await until_reachable(
            "postgres", settings.database_url,
            lambda: create_pool(settings.database_url, vector=vector, max_size=settings.db_pool_max,
                                migrations=migrations))
        own_bus = bus is None
        app[BUS] = bus or Bus(settings.amqp_url, settings.service, prefetch=settings.bus_prefetch,
                              max_retries=settings.bus_max_retries,
                              retry_delay_ms=settings.bus_retry_delay_ms,
                              queue_type=settings.amqp_queue_type, delivery_limit=settings.amqp_delivery_limit)
        if own_bus:
            await until_reachable("rabbitmq", settings.amqp_url, app[BUS].connect)
        app[HEALTH_CHECKS]["database"] = _check_db
        app[HEALTH_CHECKS]["broker"] = _check_bus
        # while the database is away, the bus holds this service's consumers and probes it
        # (and then replaces the pool's connections to the old server at once, instead of
        # letting each fail once more)
        app[BUS].add_probe(DATABASE, lambda: app[POOL].fetchval("SELECT 1"),
                           on_back=app[POOL].expire_connections)
        relay = OutboxRelay(app[POOL], app[BUS]) if outbox else None
        if relay:
            await relay.start()
            app[HEALTH_CHECKS]["outbox"] = _outbox_check(relay)
        app[HEALTH_CHECKS]["consumers"] = _check_consumers
        deps = None
        if bootstrap is not None:
            deps = bootstrap(settings, app[POOL], app[BUS])
            if inspect.isawaitable(deps):
                deps = await deps
            app[DEPS] = deps
        if registry:
            subscribe_all(app[BUS], registry, deps)
            await app[BUS].start_consuming()
        log.info("service_started", port=settings.port)
        yield
        await app[BUS].stop_consuming(timeout=settings.shutdown_timeout)
        if deps is not None and hasattr(deps, "close"):
            await deps.close()
        if relay:
            await relay.stop()
        if own_bus:
            await app[BUS].close()
        if own_pool:
            await app[POOL].close()

    return ctx


T = TypeVar("T")
# Errors that mean "not reachable (yet)": refused, unknown host, timeouts, starting up,
# wrong password or missing database. Anything else (a broken migration, say) still crashes.
_UNREACHABLE = (OSError, asyncio.TimeoutError, ConnectionError,
                asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.InvalidAuthorizationSpecificationError,
                asyncpg.exceptions.InvalidCatalogNameError, asyncpg.exceptions.TooManyConnectionsError,
                asyncpg.exceptions.InterfaceError, aio_pika.exceptions.AMQPConnectionError)


async def until_reachable(dependency: str, url: str, connect: Callable[[], Awaitable[T]], *,
                          max_delay_s: float = 10.0) -> T:
    """Retry ``connect`` until it works, saying in the log what is unreachable and why.

    Start-up waits here before the port opens, so the service (and its container) stays
    unhealthy instead of failing requests while reporting healthy.
    """
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            return await connect()
        except _UNREACHABLE as exc:
            error = str(exc) or type(exc).__name__
        log.error("dependency_unreachable", dependency=dependency, at=_where(url), attempt=attempt,
                  error=error[:300], retry_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(max_delay_s, delay * 2)


def _where(url: str) -> str:
    """host:port of a URL, never its credentials."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    except ValueError:
        return "an unparseable URL"


def run(app_factory: Callable[[], Awaitable[web.Application] | web.Application],
        settings: ServiceSettings) -> None:
    """Serve until SIGTERM/SIGINT; aiohttp then runs on_shutdown (close streams) and cleanup."""
    configure_logging(settings.service, settings.log_level)
    problem = listen_problem(settings)
    if problem:
        raise SystemExit(problem)
    web.run_app(app_factory(), host=settings.bind_host, port=settings.port,
                shutdown_timeout=settings.shutdown_timeout, access_log=None, print=None,
                handle_signals=True)
