"""Gateway app factory."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from common.bus import Bus
from common.handlers import periodic
from common.http import InternalClient, internal_session
from common.logging import get_logger
from common.settings import SERVICE_PORTS, service_url
from common.web import BUS, HEALTH_CHECKS, POOL, SHUTDOWN_HOOKS, make_app, service_context
from services.gateway import (analytics_routes, api, auth, avatar_routes, chat_api, console_routes, feedback_routes,
                              handlers, knowledge_routes, ratelimit, repository, service, views, visitor_routes,
                              widget)
from services.gateway.openapi import openapi_document
from services.gateway.reference import reference_page
from services.gateway.clients import CONVERSATION, INTERNAL
from services.gateway.proxies import TrustedProxies
from services.gateway.settings import Settings
from services.gateway.stream import StreamHub

MIGRATIONS = Path(__file__).parent / "migrations"
BACKENDS = [name for name in SERVICE_PORTS if name != "gateway"]
log = get_logger(__name__)


async def _clients_ctx(app: web.Application):
    settings = app[views.SETTINGS_KEY]
    session = internal_session(settings.internal_api_key, connector=aiohttp.TCPConnector(limit=200))
    app[INTERNAL] = {name: InternalClient(session, service_url(name), name) for name in BACKENDS}
    app[CONVERSATION] = app[INTERNAL]["conversation"]
    yield
    await session.close()


async def _stream_ctx(app: web.Application):
    hub = StreamHub(app[BUS])
    app[widget.HUB] = hub
    await app[BUS].open_stream(hub.dispatch)
    # stream events sent while the broker was away are lost: clients reconnect and replay
    app[BUS].on_reconnect(hub.close_all)
    yield


async def _purge(app: web.Application) -> None:
    settings = app[views.SETTINGS_KEY]
    await ratelimit.purge(app[POOL])
    async with app[POOL].acquire() as conn:
        await repository.purge_message_seqs(conn)
        # a retried message id matters within its month; a session past its end is dead
        last_month = (service.month_start() - timedelta(days=1)).replace(day=1)
        await repository.purge_counted_messages(conn, last_month)
        await repository.purge_visitor_sessions(conn, settings.visitor_session_max_age_s + 86400)
        await repository.purge_console_sessions(conn, settings.session_idle_s, settings.session_max_age_s)
        await repository.purge_console_tokens(conn)


async def _close_streams(app: web.Application) -> None:
    app[widget.HUB].close_all()


async def _check_services(app: web.Application) -> dict:
    """The gateway's /health reports every service; it fails if any of them does."""
    async def one(name: str, client: InternalClient):
        try:
            async with client.session.get(client.base_url + "/health",
                                          timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return name, {"ok": resp.status == 200, "status": (await resp.json()).get("status")}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return name, {"ok": False, "error": repr(exc)[:200]}

    results = dict(await asyncio.gather(*(one(n, c) for n, c in app[INTERNAL].items())))
    if not all(r["ok"] for r in results.values()):
        raise RuntimeError(f"unhealthy: {[n for n, r in results.items() if not r['ok']]}")
    return {"services": results}


async def client_ip(request: web.Request, proxies: TrustedProxies | None) -> str:
    """The visitor's address: from X-Forwarded-For only when TRUST_FORWARDED_FOR is on and the
    request came from a trusted proxy (nginx); otherwise the peer's own address."""
    if proxies is None:
        return request.remote or "unknown"
    return await proxies.client_ip(request)


def _client_ip(settings: Settings):
    """The app's one way to name a client's address (rate limits, stream caps)."""
    proxies = TrustedProxies(settings.trusted_proxies) if settings.trust_forwarded_for else None

    async def of(request: web.Request) -> str:
        return await client_ip(request, proxies)
    return of


def _limiter(settings: Settings):
    async def limit(request: web.Request, principal: auth.Principal | None) -> None:
        pool = request.app[POOL]
        if principal is not None:
            await ratelimit.enforce(request, pool, principal.rate_key, settings.key_limit)
        else:
            await ratelimit.enforce(request, pool, await request.app[api.CLIENT_IP](request), settings.ip_limit)
    return limit


# every route module, each adding its routes with register(app)
ROUTE_MODULES = (views, widget, feedback_routes, chat_api, knowledge_routes, avatar_routes, analytics_routes,
                 visitor_routes, console_routes)


def document(app: web.Application) -> dict:
    return openapi_document(app[api.OPERATIONS], app[views.SETTINGS_KEY].public_base_url)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


async def reference(request: web.Request) -> web.Response:
    return web.Response(text=reference_page(document(request.app)), content_type="text/html")


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings, middlewares=[ratelimit.headers_middleware])
    app[views.SETTINGS_KEY] = settings
    app[auth.ADMIN_KEY] = settings.admin_api_key
    app[auth.POLICY] = auth.SessionPolicy(
        settings.session_idle_s, settings.session_max_age_s,
        frozenset(auth.origin_of(o) for o in [settings.public_base_url, *settings.console_extra_origins.split(",")]
                  if o.strip()))
    app[api.RATE_LIMIT] = _limiter(settings)
    app[api.CLIENT_IP] = _client_ip(settings)
    app[ratelimit.REFUSED] = {}
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, registry=handlers.REGISTRY,
                                           bootstrap=handlers.bootstrap))
    app.cleanup_ctx.append(_clients_ctx)
    app.cleanup_ctx.append(_stream_ctx)
    app.cleanup_ctx.append(periodic("gateway-purge", _purge, 300.0))
    app[HEALTH_CHECKS]["services"] = _check_services
    app[SHUTDOWN_HOOKS].append(_close_streams)
    app.router.add_get("/api/v1/openapi.json", openapi_json)
    app.router.add_get("/api/v1/docs", reference)
    app[api.OPERATIONS] = []
    for module in ROUTE_MODULES:
        module.register(app)
    return app
