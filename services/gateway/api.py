"""Declared operations: one decorator registers a route, does its authentication, scope check,
rate limit and parsing, and describes it for the OpenAPI document.

Because the document is built from the same declarations and pydantic models that handle the
requests, it says what the gateway really does. ``OPERATIONS`` is also what the cross-tenant
test sweeps, so a route is covered the day it is added.
"""
from __future__ import annotations

import html
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from common.web import MAX_JSON_BYTES, ApiError, read_json
from services.gateway import auth as authn
from services.gateway.models import ErrorBody

Auth = Literal["tenant", "admin", "visitor", "public"]
Need = Literal["read", "write", "chat"]

ERRORS = {
    400: "The request is malformed (bad JSON, bad unicode).",
    408: "The body did not arrive in time.",
    401: "Missing, unknown, expired or revoked credentials.",
    403: "The credentials may not do this (scope, origin, plan limit, quota).",
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


OPERATIONS: list[Operation] = []
# path parameters ending in _id that are not UUIDs: embed ids and key ids are random text, and
# an avatar id may also be "default"
NOT_UUIDS = {"embed_id", "key_id", "avatar_id"}
UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
routes = web.RouteTableDef()

# hooks set by the app: the rate limiter (so this module needs no database of its own), and
# the client's address as the app's proxy settings see it
RATE_LIMIT = web.AppKey("rate_limit_hook", object)
CLIENT_IP = web.AppKey("client_ip_hook", object)


def op(method: str, path: str, *, summary: str, tag: str, auth: Auth = "tenant", need: Need | None = None,
       body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
       response: type[BaseModel] | None = None, status: int = 200, content_type: str = "application/json",
       raw_body: str | None = None, description: str = "", extra_responses: dict[int, str] | None = None,
       also_streams: bool = False, json_object: bool = False, max_body: int = MAX_JSON_BYTES):
    need = need or ("read" if method in ("GET", "HEAD") else "write")

    def decorate(fn: Callable[[Ctx], Awaitable[web.StreamResponse]]):
        operation = Operation(method, path, fn, summary, tag, auth, need, body, query, response, status,
                              content_type, raw_body, description=description or (fn.__doc__ or "").strip(),
                              extra_responses=extra_responses or {}, also_streams=also_streams,
                              json_object=json_object, max_body=max_body)

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
                if not authn.scope_allows(ctx.principal.scope, operation.need):
                    raise ApiError(403, "insufficient_scope",
                                   f"a {ctx.principal.scope!r} key cannot {operation.need} here")
            elif operation.auth == "admin":
                authn.require_admin(request, request.app[authn.ADMIN_KEY])
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
            return await fn(ctx)

        handler.operation = operation  # type: ignore[attr-defined]
        # UUID parameters only match UUIDs: /documents/url is never mistaken for a document id
        routes.route(method, re.sub(r"{(\w+_id)}", lambda m: m.group(0) if m.group(1) in NOT_UUIDS
                                    else "{%s:%s}" % (m.group(1), UUID_PATTERN), path))(handler)
        OPERATIONS.append(operation)
        return fn

    return decorate


# --- the OpenAPI document --------------------------------------------------------------------

def _schema(model: type[BaseModel], components: dict, mode: str) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _param_schema(name: str) -> dict:
    if name == "avatar_id":
        return {"anyOf": [{"type": "string", "format": "uuid"}, {"const": "default"}]}
    if name.endswith("_id") and name not in NOT_UUIDS:
        return {"type": "string", "format": "uuid"}
    return {"type": "string", "minLength": 1, "maxLength": 200}


def openapi_document(public_url: str) -> dict:
    components: dict[str, dict] = {}
    paths: dict[str, dict] = {}
    security_of = {"tenant": [{"apiKey": []}], "admin": [{"adminKey": []}], "visitor": [{"visitorToken": []}],
                   "public": []}
    for operation in OPERATIONS:
        item: dict[str, Any] = {
            "operationId": operation.handler.__name__,
            "summary": operation.summary,
            "tags": [operation.tag],
            "security": security_of[operation.auth],
            "parameters": [{"name": p, "in": "path", "required": True, "schema": _param_schema(p)}
                           for p in operation.path_params],
            "responses": {},
        }
        if operation.description:
            item["description"] = operation.description
        if operation.query is not None:
            schema = operation.query.model_json_schema(mode="validation")
            required = set(schema.get("required", []))
            for name, prop in schema["properties"].items():
                item["parameters"].append({"name": name, "in": "query", "required": name in required,
                                           "schema": prop, **({"description": prop["description"]}
                                                              if "description" in prop else {})})
        if operation.body is not None:
            item["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _schema(operation.body, components, "validation")}}}
        elif operation.raw_body:
            item["requestBody"] = {"required": True, "content": {operation.raw_body: {"schema": {
                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"]}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if operation.response is not None:
            ok["content"] = {operation.content_type: {"schema": _schema(operation.response, components, "serialization")}}
        elif operation.json_object:
            ok["content"] = {"application/json": {"schema": {"type": "object"}}}
        elif operation.content_type != "application/json":
            ok["content"] = {operation.content_type: {"schema": {"type": "string", "format": "binary"}}}
        if operation.also_streams:
            ok.setdefault("content", {})["text/event-stream"] = {"schema": {"type": "string"}}
        item["responses"][str(operation.status)] = ok
        error_ref = _schema(ErrorBody, components, "serialization")
        for code, text in operation.extra_responses.items():
            if str(code) in item["responses"]:
                item["responses"][str(code)]["description"] = text
            else:
                item["responses"][str(code)] = {"description": text, **(
                    {"content": {"application/json": {"schema": error_ref}}} if code >= 400 else {})}
        for code, text in ERRORS.items():
            if code == 401 and operation.auth == "public":
                continue
            item["responses"].setdefault(str(code), {
                "description": text, "content": {"application/json": {"schema": error_ref}}})
        if operation.auth == "public" and operation.method == "GET" and not operation.path_params \
                and 403 not in operation.extra_responses:
            item["responses"].pop("403", None)
        paths.setdefault(operation.path, {})[operation.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "avatarchat API", "version": "1.0.0", "description": (
            "Tenants manage chatbots, keys and knowledge with an API key (`Authorization: Bearer ak_live_...`). "
            "The widget's endpoints take a visitor token. Errors are always "
            "`{\"error\": {\"code\", \"message\", \"details\"}}`; lists are cursor-paginated.")},
        "servers": [{"url": public_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "A tenant API key, ak_live_<id>_<secret>"},
            "adminKey": {"type": "http", "scheme": "bearer", "description": "The platform admin key"},
            "visitorToken": {"type": "http", "scheme": "bearer",
                             "description": "A visitor token from starting a conversation (also ?token= for SSE)"},
        }},
    }


def reference_page(doc: dict) -> str:
    """A readable API reference rendered from the OpenAPI document (no JavaScript needed)."""
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
           f"content='width=device-width,initial-scale=1'><title>{html.escape(doc['info']['title'])}</title>"
           "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;"
           "color:#111}h2{border-bottom:1px solid #ddd;margin-top:2.5rem}.op{border:1px solid #e5e7eb;"
           "border-radius:8px;padding:.75rem 1rem;margin:1rem 0}.m{font-weight:700;font-family:monospace;"
           "padding:.1rem .4rem;border-radius:4px;background:#eef2ff}code,pre{font-family:ui-monospace,monospace;"
           "font-size:13px}pre{background:#f8fafc;padding:.5rem;overflow:auto;max-height:300px}"
           "small{color:#555}</style></head><body>",
           f"<h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])}</p>",
           "<p>Machine-readable: <a href='/api/v1/openapi.json'>openapi.json</a> (OpenAPI 3.1).</p>"]
    by_tag: dict[str, list] = {}
    for path, methods in doc["paths"].items():
        for method, item in methods.items():
            by_tag.setdefault(item["tags"][0], []).append((path, method, item))
    schemas = doc["components"]["schemas"]
    for tag, items in by_tag.items():
        out.append(f"<h2>{html.escape(tag)}</h2>")
        for path, method, item in items:
            auth_name = next(iter(item["security"][0]), "none") if item["security"] else "none"
            out.append(f"<div class=op id='{item['operationId']}'><span class=m>{method.upper()}</span> "
                       f"<code>{html.escape(path)}</code> — {html.escape(item['summary'])} "
                       f"<small>(auth: {auth_name})</small>")
            if item.get("description"):
                out.append(f"<p>{html.escape(item['description'])}</p>")
            params = [p for p in item["parameters"]]
            if params:
                out.append("<p>Parameters: " + ", ".join(
                    f"<code>{html.escape(p['name'])}</code> ({p['in']}{', required' if p['required'] else ''})"
                    for p in params) + "</p>")
            body = item.get("requestBody", {}).get("content", {})
            for ctype, content in body.items():
                ref = content["schema"].get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                shown = json.dumps(schemas.get(name, content["schema"]), indent=1)[:3000]
                out.append(f"<details><summary>Request body ({html.escape(ctype)}) {html.escape(name)}</summary>"
                           f"<pre>{html.escape(shown)}</pre></details>")
            codes = ", ".join(item["responses"])
            out.append(f"<p><small>Responses: {codes}</small></p></div>")
    out.append("</body></html>")
    return "".join(out)
