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

from common.errors import parse_uuid
from common.web import POOL, ApiError, json_response, read_json
from services.analytics import reports
from services.analytics import repository as repo

routes = web.RouteTableDef()
EXPORT_BATCH = 500


def _scope(request: web.Request) -> tuple[uuid.UUID, reports.Range, list[uuid.UUID] | None]:
    q = request.query
    tenant_id = parse_uuid(q.get("tenant_id"), "tenant_id", status=400)
    rng = reports.parse_range(q.get("from"), q.get("to"))
    chatbots = q.getall("chatbot_id", [])
    return tenant_id, rng, [parse_uuid(c, "chatbot_id", status=400) for c in chatbots] or None


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
    tenant_id = parse_uuid(request.query.get("tenant_id"), "tenant_id", status=400)
    async with request.app[POOL].acquire() as conn:
        days = await repo.retention_days(conn, tenant_id)
    default = request.app[RETENTION_DEFAULT]
    return json_response({"retention_days": days or default, "default_retention_days": default})


@routes.put("/internal/analytics/settings")
async def put_settings(request: web.Request) -> web.Response:
    tenant_id = parse_uuid(request.query.get("tenant_id"), "tenant_id", status=400)
    body = await read_json(request, SettingsIn)
    async with request.app[POOL].acquire() as conn:
        await repo.set_retention_days(conn, tenant_id, body.retention_days)
    return json_response({"retention_days": body.retention_days,
                          "default_retention_days": request.app[RETENTION_DEFAULT]})


RETENTION_DEFAULT = web.AppKey("retention_default_days", int)


class VisitorExportIn(BaseModel):
    tenant_id: uuid.UUID
    chatbot_id: uuid.UUID
    conversation_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100_000)


@routes.post("/internal/visitors/{visitor_id}/export")
async def export_visitor(request: web.Request) -> web.Response:
    """Every event recorded of one visitor's conversations (those the conversation service
    named, and any analytics knows of the visitor), as recorded."""
    body = await read_json(request, VisitorExportIn, max_bytes=8 * 1024 ** 2)
    visitor_id = parse_uuid(request.match_info["visitor_id"], "visitor_id", status=400)
    async with request.app[POOL].acquire() as conn:
        conversations = await repo.visitor_conversations(conn, body.tenant_id, body.chatbot_id, visitor_id,
                                                         body.conversation_ids)
        rows = await repo.visitor_events(conn, body.tenant_id, conversations)
    return json_response({"events": [{"event_id": str(r["event_id"]), "event_type": r["event_type"],
                                      "occurred_at": r["occurred_at"].isoformat(), "payload": r["payload"]}
                                     for r in rows]})
