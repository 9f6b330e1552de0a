"""The OpenAPI 3.1 document, built from the operations an app registered (services/gateway/api.py)
and the pydantic models that handle their requests, so it says what the gateway really does."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from services.gateway.api import ERRORS, NOT_UUIDS, Operation
from services.gateway.models import ErrorBody


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


def openapi_document(operations: list[Operation], public_url: str) -> dict:
    components: dict[str, dict] = {}
    paths: dict[str, dict] = {}
    security_of = {"tenant": [{"apiKey": []}, {"session": []}], "admin": [{"adminKey": []}, {"session": []}],
                   "session": [{"session": []}], "visitor": [{"visitorToken": []}], "public": []}
    for operation in operations:
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
            "Tenants manage chatbots, keys and knowledge with an API key (`Authorization: Bearer ak_live_...`), "
            "or as a console user with the session cookie (`POST /api/v1/auth/login`; state-changing requests "
            "then send `X-CSRF-Token`). "
            "The widget's endpoints take a visitor token. Errors are always "
            "`{\"error\": {\"code\", \"message\", \"details\"}}`; lists are cursor-paginated.")},
        "servers": [{"url": public_url.rstrip("/") or "/"}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "A tenant API key, ak_live_<id>_<secret>"},
            "adminKey": {"type": "http", "scheme": "bearer", "description": "The platform admin key"},
            "session": {"type": "apiKey", "in": "cookie", "name": "__Host-avatarchat_session",
                        "description": "A console session (from /api/v1/auth/login); every request that changes "
                                       "something also sends its csrf_token as X-CSRF-Token"},
            "visitorToken": {"type": "http", "scheme": "bearer",
                             "description": "A visitor token from starting a conversation (also ?token= for SSE)"},
        }},
    }
