"""Internal HTTP API of the analytics service (called by the gateway only).

Every call carries ``tenant_id``; the gateway has already checked that the tenant owns any
``chatbot_id`` it passes. Exports stream from a server-side cursor in chunks, so a big export
never sits in memory.
"""
from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import date, datetime
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, Field

from common.web import POOL, ApiError, json_response, read_json
from services.analytics import reports
from services.analytics import repository as repo

routes = web.RouteTableDef()
EXPORT_BATCH = 500


def _uuid(value: str | None, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        raise ApiError(400, "bad_request", f"{what} must be a UUID") from None


def _scope(request: web.Request) -> tuple[uuid.UUID, reports.Range, list[uuid.UUID] | None]:
    q = request.query
    tenant_id = _uuid(q.get("tenant_id"), "tenant_id")
    rng = reports.parse_range(q.get("from"), q.get("to"))
    chatbots = q.getall("chatbot_id", [])
    return tenant_id, rng, [_uuid(c, "chatbot_id") for c in chatbots] or None


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return max(low, min(high, int(raw)))
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an integer") from None


@routes.get("/internal/analytics/summary")
async def summary(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    granularity = request.query.get("granularity", "day")
    if granularity not in ("day", "hour"):
        raise ApiError(400, "bad_request", "granularity is day or hour")
    return json_response(await reports.summary(request.app[POOL], tenant_id, rng, chatbots, granularity))


@routes.get("/internal/analytics/chatbots")
async def chatbots(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    return json_response(await reports.chatbots(request.app[POOL], tenant_id, rng, chatbots))


@routes.get("/internal/analytics/visitors")
async def visitors(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    return json_response(await reports.visitors(request.app[POOL], tenant_id, rng, chatbots))


@routes.get("/internal/analytics/costs")
async def costs(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    return json_response(await reports.costs(request.app[POOL], tenant_id, rng, chatbots))


@routes.get("/internal/analytics/unanswered")
async def unanswered(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    return json_response(await reports.unanswered(request.app[POOL], tenant_id, rng, chatbots,
                                                  _int(request, "limit", 20, 1, 100)))


@routes.get("/internal/analytics/feedback")
async def feedback(request: web.Request) -> web.Response:
    tenant_id, rng, chatbots = _scope(request)
    rating = request.query.get("rating", "down")
    if rating not in ("up", "down"):
        raise ApiError(400, "bad_request", "rating is up or down")
    return json_response(await reports.feedback(request.app[POOL], tenant_id, rng, rating, chatbots,
                                                _int(request, "limit", 50, 1, 500)))


# --- exports ---------------------------------------------------------------------------------

def _plain(value):
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class _Csv:
    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")

    def rows(self, rows: list[list]) -> bytes:
        for row in rows:
            self.writer.writerow(["" if v is None else v for v in row])
        data = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return data.encode()


async def _export(request: web.Request, sql: str, args: list, fmt: str, filename: str) -> web.StreamResponse:
    content_types = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson", "json": "application/json"}
    if fmt not in content_types:
        raise ApiError(400, "bad_request", "format is csv, json or jsonl")
    response = web.StreamResponse(headers={
        "Content-Type": content_types[fmt], "Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})
    first = True
    writer = _Csv()
    prepared = False
    async with request.app[POOL].acquire() as conn, conn.transaction():
        cursor = await conn.cursor(sql, *args)
        columns: list[str] | None = None
        while True:
            rows = await cursor.fetch(EXPORT_BATCH)
            if not prepared:
                await response.prepare(request)
                prepared = True
            if columns is None:
                columns = list(rows[0].keys()) if rows else []
                if fmt == "csv" and columns:
                    await response.write(writer.rows([columns]))
            if not rows:
                break
            if fmt == "csv":
                chunk = writer.rows([[_plain(v) for v in r.values()] for r in rows])
            elif fmt == "jsonl":
                chunk = "".join(json.dumps({k: _plain(v) for k, v in r.items()}) + "\n" for r in rows).encode()
            else:  # one JSON array, written a batch at a time
                items = ",\n".join(json.dumps({k: _plain(v) for k, v in r.items()}) for r in rows)
                chunk = (("[\n" if first else ",\n") + items).encode()
                first = False
            await response.write(chunk)
    if fmt == "json":
        await response.write(b"[]\n" if first else b"\n]\n")
    await response.write_eof()
    return response


@routes.get("/internal/analytics/export/conversations")
async def export_conversations(request: web.Request) -> web.StreamResponse:
    tenant_id, rng, chatbots = _scope(request)
    args = [tenant_id, *rng.bounds] + ([chatbots] if chatbots else [])
    return await _export(request, repo.conversations_export_sql(chatbots), args, request.query.get("format", "csv"),
                         f"conversations_{rng.since}_{rng.until}")


@routes.get("/internal/analytics/export/metrics")
async def export_metrics(request: web.Request) -> web.StreamResponse:
    tenant_id, rng, chatbots = _scope(request)
    granularity = request.query.get("granularity", "day")
    if granularity not in ("day", "hour"):
        raise ApiError(400, "bad_request", "granularity is day or hour")
    args = [tenant_id, *rng.bounds] + ([chatbots] if chatbots else [])
    return await _export(request, repo.metrics_export_sql(chatbots, granularity[0]), args,
                         request.query.get("format", "csv"), f"metrics_{rng.since}_{rng.until}")


# --- settings --------------------------------------------------------------------------------

class SettingsIn(BaseModel):
    retention_days: int = Field(ge=1, le=3650)


@routes.get("/internal/analytics/settings")
async def get_settings(request: web.Request) -> web.Response:
    tenant_id = _uuid(request.query.get("tenant_id"), "tenant_id")
    async with request.app[POOL].acquire() as conn:
        days = await repo.retention_days(conn, tenant_id)
    default = request.app[RETENTION_DEFAULT]
    return json_response({"retention_days": days or default, "default_retention_days": default})


@routes.put("/internal/analytics/settings")
async def put_settings(request: web.Request) -> web.Response:
    tenant_id = _uuid(request.query.get("tenant_id"), "tenant_id")
    body = await read_json(request, SettingsIn)
    async with request.app[POOL].acquire() as conn:
        await repo.set_retention_days(conn, tenant_id, body.retention_days)
    return json_response({"retention_days": body.retention_days,
                          "default_retention_days": request.app[RETENTION_DEFAULT]})


RETENTION_DEFAULT = web.AppKey("retention_default_days", int)
