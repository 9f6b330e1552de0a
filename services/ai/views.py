"""Internal HTTP of the ai service (the gateway forwards tenant calls here): tenant provider
keys and the usage ledger. (Cancelling a reply is an event: ReplyCancelRequestedEvent.)"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from common.errors import parse_uuid
from common.netguard import UnsafeUrl, ensure_public_url
from common.web import POOL, SETTINGS, ApiError, json_response, read_json
from services.ai import repository
from services.ai.keyvault import KeyVault, mask
from services.ai.providers.registry import KEYED_PROVIDERS

VAULT = web.AppKey("vault", KeyVault)


class ProviderKeyIn(BaseModel):
    api_key: str = Field(min_length=8, max_length=500)
    base_url: str | None = Field(None, max_length=500)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        return value or None


def _provider(request: web.Request) -> str:
    provider = request.match_info["provider"]
    if provider not in KEYED_PROVIDERS:
        raise ApiError(404, "not_found", f"provider must be one of {', '.join(KEYED_PROVIDERS)}")
    return provider


def _key_view(row: dict) -> dict:
    return {"provider": row["provider"], "key_hint": row["key_hint"], "base_url": row["base_url"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


async def put_provider_key(request: web.Request) -> web.Response:
    tenant_id = parse_uuid(request.match_info["tenant_id"], "tenant_id", status=400)
    provider = _provider(request)
    body = await read_json(request, ProviderKeyIn)
    if body.base_url:
        try:  # a friendly early answer; the guarded transport checks again at every connection
            await ensure_public_url(body.base_url, request.app[SETTINGS].provider_policy)
        except UnsafeUrl as exc:
            raise ApiError(422, "unsafe_base_url", f"base_url must be a public http(s) address: {exc}") from None
    key = body.api_key.strip()
    async with request.app[POOL].acquire() as conn:
        row = await repository.put_provider_key(conn, tenant_id, provider, request.app[VAULT].encrypt(key),
                                                mask(key), body.base_url)
    return json_response({"data": _key_view(row)})


async def get_provider_key(request: web.Request) -> web.Response:
    tenant_id = parse_uuid(request.match_info["tenant_id"], "tenant_id", status=400)
    provider = _provider(request)
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_provider_key_info(conn, tenant_id, provider)
    if row is None:
        raise ApiError(404, "not_found", f"no {provider} key is stored for this tenant")
    return json_response({"data": _key_view(row)})


async def delete_provider_key(request: web.Request) -> web.Response:
    tenant_id = parse_uuid(request.match_info["tenant_id"], "tenant_id", status=400)
    provider = _provider(request)
    async with request.app[POOL].acquire() as conn:
        if not await repository.delete_provider_key(conn, tenant_id, provider):
            raise ApiError(404, "not_found", f"no {provider} key is stored for this tenant")
    return web.Response(status=204)


def _moment(value: str | None, name: str, default: datetime) -> datetime:
    if not value:
        return default
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time.min, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


async def usage(request: web.Request) -> web.Response:
    """Cost and tokens of a tenant's replies in [from, to), grouped by chatbot, day or model.
    A bare ``to`` date includes that whole day."""
    q = request.query
    tenant_id = parse_uuid(q.get("tenant_id"), "tenant_id", status=400)
    group_by = q.get("group_by", "day")
    if group_by not in ("chatbot", "day", "model"):
        raise ApiError(400, "bad_request", "group_by must be chatbot, day or model")
    now = datetime.now(timezone.utc)
    end = _moment(q.get("to"), "to", now + timedelta(seconds=1))
    if q.get("to") and len(q["to"]) == 10:
        end += timedelta(days=1)
    start = _moment(q.get("from"), "from", end - timedelta(days=30))
    if start >= end:
        raise ApiError(400, "bad_request", "from must be before to")
    async with request.app[POOL].acquire() as conn:
        rows = await repository.usage(conn, tenant_id, start, end, group_by)
    data = [{"key": r["key"], "replies": r["replies"], "cached_replies": r["cached_replies"],
             "failed_replies": r["failed_replies"], "prompt_tokens": int(r["prompt_tokens"]),
             "completion_tokens": int(r["completion_tokens"]), "cost_usd": float(r["cost_usd"])} for r in rows]
    totals = {name: sum(item[name] for item in data)
              for name in ("replies", "cached_replies", "failed_replies", "prompt_tokens", "completion_tokens")}
    totals["cost_usd"] = round(sum(item["cost_usd"] for item in data), 6)
    return json_response({"data": data, "totals": totals, "group_by": group_by,
                          "from": start.isoformat(), "to": end.isoformat()})


def add_routes(app: web.Application) -> None:
    keys = "/internal/tenants/{tenant_id}/provider-keys/{provider}"
    app.router.add_put(keys, put_provider_key)
    app.router.add_get(keys, get_provider_key)
    app.router.add_delete(keys, delete_provider_key)
    app.router.add_get("/internal/usage", usage)
