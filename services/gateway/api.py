"""Declared operations: each route module declares its operations with its own
``op = Operations()`` (``@op("GET", "/api/v1/...", ...)``); one declaration does the route's
authentication, scope check, rate limit and parsing, and describes it for the OpenAPI document
(services/gateway/openapi.py).

Declaring touches nothing global: ``register(app)`` adds a module's routes to an app and its
operations to ``app[OPERATIONS]``, which the OpenAPI document is built from and the
cross-tenant test sweeps, so a route is covered the day it is added.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from common.web import MAX_JSON_BYTES, ApiError, read_json
from services.gateway import auth as authn

# tenant: an API key or a tenant user's session; admin: the admin key or an admin session;
# session: any console session (the /auth/ routes a signed-in person uses)
Auth = Literal["tenant", "admin", "session", "visitor", "public"]
Need = Literal["read", "write", "chat", "manage"]

ERRORS = {
    400: "The request is malformed (bad JSON, bad unicode).",
    408: "The body did not arrive in time.",
    401: "Missing, unknown, expired or revoked credentials.",
    403: "The credentials may not do this (scope, role, CSRF check, origin, plan limit, quota).",
    404: "No such object, or not yours.",
    413: "The body is too large.",
    415: "Send application/json.",
    422: "The body or the query does not validate.",
    429: "Rate limited; see Retry-After and the RateLimit headers.",
    503: "A service behind the gateway is down; retry.",
}


@dataclass
class Ctx:
    request: web.Request
    principal: authn.Principal | None = None
    session: authn.Session | None = None  # auth="session" routes: the caller's console session
    body: Any = None
    query: Any = None


@dataclass
class Operation:
    method: str
    path: str
    handler: Callable[[Ctx], Awaitable[web.StreamResponse]]
    summary: str
    tag: str
    auth: Auth
    need: Need
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    content_type: str = "application/json"
    raw_body: str | None = None  # e.g. "multipart/form-data": the handler reads the body itself
    errors: tuple[int, ...] = ()
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)
    also_streams: bool = False  # answers text/event-stream too, when the request asks for it
    json_object: bool = False  # a JSON object relayed from a service, documented as free-form
    max_body: int = MAX_JSON_BYTES  # what the body model allows must fit (common.web.json_body_cap)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


OPERATIONS = web.AppKey("operations", list)
# path parameters ending in _id that are not UUIDs: embed ids and key ids are random text, and
# an avatar id may also be "default"
NOT_UUIDS = {"embed_id", "key_id", "avatar_id"}
UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

# hooks set by the app: the rate limiter (so this module needs no database of its own), and
# the client's address as the app's proxy settings see it
RATE_LIMIT = web.AppKey("rate_limit_hook", object)
CLIENT_IP = web.AppKey("client_ip_hook", object)


class Operations:
    """The operations one route module declares; ``register(app)`` adds them to an app."""

    def __init__(self) -> None:
        self.declared: list[Operation] = []
        self.routes = web.RouteTableDef()

    def register(self, app: web.Application) -> None:
        app.router.add_routes(self.routes)
        app.setdefault(OPERATIONS, []).extend(self.declared)

    def __call__(self, method: str, path: str, *, summary: str, tag: str, auth: Auth = "tenant",
                 need: Need | None = None, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
                 response: type[BaseModel] | None = None, status: int = 200, content_type: str = "application/json",
                 raw_body: str | None = None, description: str = "", extra_responses: dict[int, str] | None = None,
                 also_streams: bool = False, json_object: bool = False, max_body: int = MAX_JSON_BYTES):
        need = need or ("read" if method in ("GET", "HEAD") else "write")

        def decorate(fn: Callable[[Ctx], Awaitable[web.StreamResponse]]):
            operation = Operation(method, path, fn, summary, tag, auth, need, body, query, response, status,
                                  content_type, raw_body, description=description or (fn.__doc__ or "").strip(),
                                  extra_responses=extra_responses or {}, also_streams=also_streams,
                                  json_object=json_object, max_body=max_body)
            handler = _handler(operation)
            # UUID parameters only match UUIDs: /documents/url is never mistaken for a document id
            self.routes.route(method, re.sub(r"{(\w+_id)}", lambda m: m.group(0) if m.group(1) in NOT_UUIDS
                                             else "{%s:%s}" % (m.group(1), UUID_PATTERN), path))(handler)
            self.declared.append(operation)
            return fn

        return decorate


def _handler(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(request)
        for name in operation.path_params:
            if name.endswith("_id") and name not in NOT_UUIDS:
                try:
                    uuid.UUID(request.match_info[name])
                except ValueError:
                    raise ApiError(404, "not_found", f"no such {name[:-3]}") from None
        if operation.auth == "tenant":
            ctx.principal = await authn.authenticate(request)
            ctx.principal.require(operation.need)
        elif operation.auth == "admin":
            await authn.require_admin(request)
        elif operation.auth == "session":
            ctx.session = await authn.current_session(request)
        limiter = request.app.get(RATE_LIMIT)
        if limiter is not None:
            await limiter(request, ctx.principal)
        if operation.query is not None:
            try:
                ctx.query = operation.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise ApiError(422, "validation_error", "the query is not valid",
                               json.loads(exc.json(include_url=False, include_context=False))) from None
        if operation.body is not None:
            ctx.body = await read_json(request, operation.body, max_bytes=operation.max_body)
        return await operation.handler(ctx)

    handler.operation = operation  # type: ignore[attr-defined]
    return handler
