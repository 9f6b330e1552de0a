"""Tenant analytics under /api/v1/analytics: figures, quality reports, exports, retention.

The gateway checks the key, the date range and that the tenant owns the chatbot asked about,
then forwards to the analytics service with the tenant's id. JSON answers are validated
against the response models below (the ones the OpenAPI document shows); exports stream
through chunk by chunk, never held whole in memory.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field, RootModel

from common.http import InternalClient, unreachable
from common.logging import get_contextvars
from common.web import POOL, ApiError, json_response
from services.gateway import repository
from services.gateway.api import Ctx, Operations
from services.gateway.clients import INTERNAL
from services.gateway.models import Out, Query, Strict


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


TAG = "Analytics"
MAX_RANGE_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2100, 12, 31)
RANGE_ERRORS = {400: "The date range is inverted, longer than 366 days, or outside 2000-2100."}


# --- queries ---------------------------------------------------------------------------------

class RangeQuery(Query):
    since: date | None = Field(None, alias="from", description="First day (ISO date, UTC), default 29 days before `to`")
    until: date | None = Field(None, alias="to", description="Last day, inclusive (ISO date, UTC), default today")
    chatbot_id: uuid.UUID | None = Field(None, description="Only this chatbot (default: all of yours)")


class SummaryQuery(RangeQuery):
    granularity: Literal["day", "hour"] = Field("day", description="Series buckets; hourly covers at most 31 days")


class ChatbotRangeQuery(Query):
    since: date | None = Field(None, alias="from", description="First day (ISO date, UTC)")
    until: date | None = Field(None, alias="to", description="Last day, inclusive (ISO date, UTC)")


class ChatbotSummaryQuery(ChatbotRangeQuery):
    granularity: Literal["day", "hour"] = "day"


class UnansweredQuery(RangeQuery):
    limit: int = Field(20, ge=1, le=100, description="Clusters to return")


class FeedbackQuery(RangeQuery):
    rating: Literal["up", "down"] = "down"
    limit: int = Field(50, ge=1, le=500)


class MetricsExportQuery(RangeQuery):
    granularity: Literal["day", "hour"] = "day"


# --- responses -------------------------------------------------------------------------------

class AnalyticsSentimentMix(Out):
    positive: int
    neutral: int
    negative: int


class AnalyticsMetrics(Out):
    conversations: int
    engaged_conversations: int = Field(description="Conversations with at least one visitor message")
    visitors: int = Field(description="Distinct visitors")
    new_visitors: int
    returning_visitors: int
    messages: int = Field(description="Visitor messages")
    replies: int
    failed_replies: int
    cancelled_replies: int
    errors: int = Field(description="Failed replies, not counting those the visitor cancelled")
    interactions_per_conversation: float | None
    handoff_requests: int
    handoff_conversations: int
    deflection_rate: float | None = Field(description="Share of engaged conversations without a handoff request")
    cache_hits: int
    cache_hit_rate: float | None
    answered_from_knowledge: int
    unanswered: int
    feedback_up: int
    feedback_down: int
    satisfaction_rate: float | None = Field(description="up / (up + down)")
    likes_per_1000_replies: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    cost_per_conversation_usd: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    reply_time_p50_ms: float | None
    reply_time_p95_ms: float | None
    sentiment: AnalyticsSentimentMix


class AnalyticsChange(Out):
    conversations: float | None
    visitors: float | None
    messages: float | None
    replies: float | None
    errors: float | None
    handoff_conversations: float | None
    deflection_rate: float | None
    feedback_up: float | None
    feedback_down: float | None
    satisfaction_rate: float | None
    total_tokens: float | None
    cost_usd: float | None
    cost_per_conversation_usd: float | None
    ttft_p95_ms: float | None
    reply_time_p95_ms: float | None


class AnalyticsSeriesPoint(Out):
    bucket: datetime
    conversations: int
    messages: int
    replies: int
    failed_replies: int
    handoff_conversations: int
    feedback_up: int
    feedback_down: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    ttft_p50_ms: float | None = Field(None, description="Median time to first token in this bucket")
    reply_time_p50_ms: float | None = None
    reply_time_p95_ms: float | None = None


class AnalyticsSummary(Out):
    from_: date = Field(alias="from")
    to: date
    previous_from: date
    previous_to: date
    granularity: Literal["day", "hour"]
    current: AnalyticsMetrics
    previous: AnalyticsMetrics
    change: AnalyticsChange = Field(description="Relative change from the previous period of the same length")
    series: list[AnalyticsSeriesPoint]


class AnalyticsChatbot(AnalyticsMetrics):
    chatbot_id: uuid.UUID
    name: str | None = Field(description="None for a chatbot deleted since")


class AnalyticsChatbotPage(Out):
    from_: date = Field(alias="from")
    to: date
    data: list[AnalyticsChatbot]


class AnalyticsVisitorDay(Out):
    date: date
    conversations: int
    new_visitors: int
    returning_conversations: int
    messages: int


class AnalyticsIntentCount(Out):
    intent: str
    count: int


class AnalyticsVisitors(Out):
    from_: date = Field(alias="from")
    to: date
    visitors: int
    new_visitors: int
    returning_visitors: int
    conversations: int
    conversations_per_visitor: float | None
    messages_per_conversation: float | None
    by_day: list[AnalyticsVisitorDay]
    conversations_by_hour_utc: list[int] = Field(description="24 counts, hour 0 to 23 UTC")
    top_intents: list[AnalyticsIntentCount]
    sentiment: AnalyticsSentimentMix


class AnalyticsModelCost(Out):
    provider: str
    model: str
    replies: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cost_per_reply_usd: float | None


class AnalyticsCostDay(Out):
    date: date
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    conversations: int


class AnalyticsCostReport(Out):
    from_: date = Field(alias="from")
    to: date
    cost_usd: float
    conversations: int
    cost_per_conversation_usd: float | None
    cost_per_reply_usd: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    by_model: list[AnalyticsModelCost]
    by_day: list[AnalyticsCostDay]


class AnalyticsQuestionCount(Out):
    text: str
    count: int


class AnalyticsQuestionCluster(Out):
    label: str = Field(description="The most asked question of the cluster")
    count: int
    chatbot_ids: list[uuid.UUID]
    last_asked_at: datetime | None
    questions: list[AnalyticsQuestionCount]


class AnalyticsUnanswered(Out):
    from_: date = Field(alias="from")
    to: date
    total: int = Field(description="Unanswered questions in the range (up to 5000 are clustered)")
    clusters: list[AnalyticsQuestionCluster]


class AnalyticsCitation(Out):
    title: str
    url: str | None
    score: float


class AnalyticsRatedReply(Out):
    reply_id: uuid.UUID
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    rating: Literal["up", "down"]
    comment: str
    question: str
    answer: str
    citations: list[AnalyticsCitation]
    rated_at: datetime


class AnalyticsFeedback(Out):
    from_: date = Field(alias="from")
    to: date
    data: list[AnalyticsRatedReply]


class AnalyticsConversationRow(Out):
    conversation_id: uuid.UUID
    chatbot_id: uuid.UUID
    visitor_id: uuid.UUID | None
    started_at: datetime
    last_activity_at: datetime
    returning_visitor: bool | None
    messages: int
    replies: int
    failed_replies: int
    handoff: bool
    feedback_up: int
    feedback_down: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class AnalyticsConversationsExport(RootModel[list[AnalyticsConversationRow]]):
    """The same rows as the CSV and JSON-lines exports."""


class AnalyticsMetricsRow(Out):
    bucket: datetime
    chatbot_id: uuid.UUID
    conversations: int
    new_visitors: int
    returning_conversations: int
    engaged_conversations: int
    messages: int
    replies: int
    failed_replies: int
    cancelled_replies: int
    handoff_requests: int
    handoff_conversations: int
    cache_hits: int
    answered_from_knowledge: int
    unanswered: int
    feedback_up: int
    feedback_down: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    sentiment_positive: int
    sentiment_neutral: int
    sentiment_negative: int


class AnalyticsMetricsExport(RootModel[list[AnalyticsMetricsRow]]):
    """The same rows as the CSV and JSON-lines exports."""


class AnalyticsSettings(Out):
    retention_days: int = Field(description="Days raw events and per-reply details are kept")
    default_retention_days: int


def _whole_number(value):
    # JSON does not tell 90 from 90.0; both are the integer the schema asks for
    return int(value) if isinstance(value, float) and value.is_integer() else value


class AnalyticsSettingsIn(Strict):
    retention_days: Annotated[int, BeforeValidator(_whole_number)] = Field(ge=1, le=3650)


# --- helpers ---------------------------------------------------------------------------------

def _check_range(since: date | None, until: date | None) -> tuple[date, date]:
    until = until or datetime.now(timezone.utc).date()
    if not EARLIEST <= until <= LATEST or (since is not None and not EARLIEST <= since <= LATEST):
        raise ApiError(400, "date_out_of_range", f"dates must be between {EARLIEST} and {LATEST}")
    since = since or until - timedelta(days=29)
    if since > until:
        raise ApiError(400, "inverted_date_range", "'from' is after 'to'",
                       {"from": since.isoformat(), "to": until.isoformat()})
    if (until - since).days + 1 > MAX_RANGE_DAYS:
        raise ApiError(400, "date_range_too_long", f"a range covers at most {MAX_RANGE_DAYS} days",
                       {"from": since.isoformat(), "to": until.isoformat(), "max_days": MAX_RANGE_DAYS})
    return since, until


async def _owned(ctx: Ctx, chatbot_id: uuid.UUID):
    async with ctx.request.app[POOL].acquire() as conn:
        row = await repository.get_chatbot(conn, ctx.principal.tenant_id, chatbot_id)
    if row is None:
        raise ApiError(404, "not_found", "no such chatbot")
    return row


async def _params(ctx: Ctx, chatbot_id: uuid.UUID | None = None, **extra) -> dict:
    q = ctx.query
    since, until = _check_range(q.since, q.until)
    chatbot_id = chatbot_id or getattr(q, "chatbot_id", None)
    if chatbot_id is not None:
        await _owned(ctx, chatbot_id)
    params = {"tenant_id": str(ctx.principal.tenant_id), "from": since.isoformat(), "to": until.isoformat()}
    if chatbot_id is not None:
        params["chatbot_id"] = str(chatbot_id)
    params.update({k: str(v) for k, v in extra.items() if v is not None})
    return params


def _analytics(ctx: Ctx) -> InternalClient:
    return ctx.request.app[INTERNAL]["analytics"]


async def _get(ctx: Ctx, path: str, params: dict, model: type[BaseModel]) -> web.Response:
    body = await _analytics(ctx).request("GET", f"/internal/analytics/{path}", params=params)
    return json_response(model.model_validate(body).model_dump(mode="json", by_alias=True))


def _path_chatbot(ctx: Ctx) -> uuid.UUID:
    return uuid.UUID(ctx.request.match_info["chatbot_id"])


# --- figures ---------------------------------------------------------------------------------

@op("GET", "/api/v1/analytics/summary", summary="Headline figures with the previous period", tag=TAG,
    query=SummaryQuery, response=AnalyticsSummary, extra_responses=RANGE_ERRORS)
async def analytics_summary(ctx: Ctx) -> web.Response:
    """Conversations, visitors, messages, replies, response times (p50/p95), tokens and cost,
    feedback, handoffs, deflection, cache hits and errors over a date range, the same figures
    for the period of the same length just before, their relative change, and a series."""
    return await _get(ctx, "summary", await _params(ctx, granularity=ctx.query.granularity), AnalyticsSummary)


@op("GET", "/api/v1/analytics/chatbots", summary="Performance of each chatbot", tag=TAG, query=ChatbotRangeQuery,
    response=AnalyticsChatbotPage, extra_responses=RANGE_ERRORS)
async def analytics_chatbots(ctx: Ctx) -> web.Response:
    """Every chatbot of yours (also those without traffic), busiest first."""
    params = await _params(ctx)
    body = await _analytics(ctx).request("GET", "/internal/analytics/chatbots", params=params)
    async with ctx.request.app[POOL].acquire() as conn:
        bots = await repository.list_chatbots(conn, ctx.principal.tenant_id, None, 10_000)
    names = {str(b["id"]): b["name"] for b in bots}
    rows = {row["chatbot_id"]: row for row in body["data"]}
    data = []
    for row in body["data"]:
        data.append({**row, "name": names.get(row["chatbot_id"])})
    for chatbot_id, name in names.items():
        if chatbot_id not in rows:
            data.append({**_zero_metrics(), "chatbot_id": chatbot_id, "name": name})
    page = AnalyticsChatbotPage.model_validate({"from": body["from"], "to": body["to"], "data": data})
    return json_response(page.model_dump(mode="json", by_alias=True))


def _zero_metrics() -> dict:
    fields = AnalyticsMetrics.model_fields
    out: dict = {}
    for name, info in fields.items():
        if name == "sentiment":
            out[name] = {"positive": 0, "neutral": 0, "negative": 0}
        elif info.annotation is int:
            out[name] = 0
        elif info.annotation is float:
            out[name] = 0.0
        else:
            out[name] = None
    return out


@op("GET", "/api/v1/analytics/chatbots/{chatbot_id}", summary="One chatbot's figures with the previous period",
    tag=TAG, query=ChatbotSummaryQuery, response=AnalyticsSummary, extra_responses=RANGE_ERRORS)
async def analytics_chatbot(ctx: Ctx) -> web.Response:
    params = await _params(ctx, _path_chatbot(ctx), granularity=ctx.query.granularity)
    return await _get(ctx, "summary", params, AnalyticsSummary)


@op("GET", "/api/v1/analytics/visitors", summary="Visitor insights", tag=TAG, query=RangeQuery,
    response=AnalyticsVisitors, extra_responses=RANGE_ERRORS)
async def analytics_visitors(ctx: Ctx) -> web.Response:
    """Distinct, new and returning visitors, conversations per visitor, busy hours, top
    intents and the sentiment of visitors' messages."""
    return await _get(ctx, "visitors", await _params(ctx), AnalyticsVisitors)


@op("GET", "/api/v1/analytics/costs", summary="Cost per conversation and per model", tag=TAG, query=RangeQuery,
    response=AnalyticsCostReport, extra_responses=RANGE_ERRORS)
async def analytics_costs(ctx: Ctx) -> web.Response:
    return await _get(ctx, "costs", await _params(ctx), AnalyticsCostReport)


# --- quality ---------------------------------------------------------------------------------

@op("GET", "/api/v1/analytics/unanswered", summary="Unanswered questions, clustered", tag=TAG,
    query=UnansweredQuery, response=AnalyticsUnanswered, extra_responses=RANGE_ERRORS)
async def analytics_unanswered(ctx: Ctx) -> web.Response:
    """Questions the knowledge base had no answer for (nothing above the threshold, or the
    fallback answer), similar ones grouped, biggest groups first: the gaps to fill."""
    return await _get(ctx, "unanswered", await _params(ctx, limit=ctx.query.limit), AnalyticsUnanswered)


@op("GET", "/api/v1/analytics/feedback", summary="Rated replies with question, answer and citations", tag=TAG,
    query=FeedbackQuery, response=AnalyticsFeedback, extra_responses=RANGE_ERRORS)
async def analytics_feedback(ctx: Ctx) -> web.Response:
    """Thumbs-down replies by default (`rating=up` for the others), newest first."""
    params = await _params(ctx, rating=ctx.query.rating, limit=ctx.query.limit)
    return await _get(ctx, "feedback", params, AnalyticsFeedback)


# --- exports ---------------------------------------------------------------------------------

async def _stream(ctx: Ctx, path: str, params: dict) -> web.StreamResponse:
    client = _analytics(ctx)
    headers = {}
    if "correlation_id" in get_contextvars():
        headers["X-Correlation-ID"] = get_contextvars()["correlation_id"]
    try:
        async with client.session.get(client.base_url + path, params=params, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
            if resp.status >= 400:
                body = await resp.json(content_type=None)
                err = (body or {}).get("error", {})
                if resp.status >= 500:
                    raise ApiError(503, "unavailable", "the analytics service failed; try again")
                raise ApiError(resp.status, err.get("code", "error"), err.get("message", ""), err.get("details"))
            out = web.StreamResponse(headers={k: resp.headers[k] for k in ("Content-Type", "Content-Disposition")
                                              if k in resp.headers})
            await out.prepare(ctx.request)
            async for chunk in resp.content.iter_chunked(64 * 1024):
                await out.write(chunk)
            await out.write_eof()
            return out
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise unreachable("analytics", exc) from None


@op("GET", "/api/v1/analytics/export/conversations.csv", summary="Export conversations (CSV)", tag=TAG,
    query=RangeQuery, content_type="text/csv", extra_responses=RANGE_ERRORS)
async def export_conversations_csv(ctx: Ctx) -> web.StreamResponse:
    """One row per conversation started in the range: visitor, messages, replies, handoff,
    feedback, tokens and cost. Streamed."""
    return await _stream(ctx, "/internal/analytics/export/conversations", await _params(ctx, format="csv"))


@op("GET", "/api/v1/analytics/export/conversations.jsonl", summary="Export conversations (JSON lines)", tag=TAG,
    query=RangeQuery, content_type="application/x-ndjson", extra_responses=RANGE_ERRORS)
async def export_conversations_jsonl(ctx: Ctx) -> web.StreamResponse:
    return await _stream(ctx, "/internal/analytics/export/conversations", await _params(ctx, format="jsonl"))


@op("GET", "/api/v1/analytics/export/conversations.json", summary="Export conversations (one JSON array)",
    tag=TAG, query=RangeQuery, response=AnalyticsConversationsExport, extra_responses=RANGE_ERRORS)
async def export_conversations_json(ctx: Ctx) -> web.StreamResponse:
    return await _stream(ctx, "/internal/analytics/export/conversations", await _params(ctx, format="json"))


@op("GET", "/api/v1/analytics/export/metrics.csv", summary="Export daily or hourly metrics (CSV)", tag=TAG,
    query=MetricsExportQuery, content_type="text/csv", extra_responses=RANGE_ERRORS)
async def export_metrics_csv(ctx: Ctx) -> web.StreamResponse:
    """One row per chatbot and day (or hour) with every rollup column. Streamed."""
    params = await _params(ctx, format="csv", granularity=ctx.query.granularity)
    return await _stream(ctx, "/internal/analytics/export/metrics", params)


@op("GET", "/api/v1/analytics/export/metrics.jsonl", summary="Export daily or hourly metrics (JSON lines)",
    tag=TAG, query=MetricsExportQuery, content_type="application/x-ndjson", extra_responses=RANGE_ERRORS)
async def export_metrics_jsonl(ctx: Ctx) -> web.StreamResponse:
    params = await _params(ctx, format="jsonl", granularity=ctx.query.granularity)
    return await _stream(ctx, "/internal/analytics/export/metrics", params)


@op("GET", "/api/v1/analytics/export/metrics.json", summary="Export daily or hourly metrics (one JSON array)",
    tag=TAG, query=MetricsExportQuery, response=AnalyticsMetricsExport, extra_responses=RANGE_ERRORS)
async def export_metrics_json(ctx: Ctx) -> web.StreamResponse:
    params = await _params(ctx, format="json", granularity=ctx.query.granularity)
    return await _stream(ctx, "/internal/analytics/export/metrics", params)


# --- retention -------------------------------------------------------------------------------

@op("GET", "/api/v1/analytics/settings", summary="Analytics retention", tag=TAG, response=AnalyticsSettings)
async def get_analytics_settings(ctx: Ctx) -> web.Response:
    body = await _analytics(ctx).request("GET", "/internal/analytics/settings",
                                         params={"tenant_id": str(ctx.principal.tenant_id)})
    return json_response(AnalyticsSettings.model_validate(body).model_dump(mode="json"))


@op("PUT", "/api/v1/analytics/settings", summary="AnalyticsChange analytics retention", tag=TAG, body=AnalyticsSettingsIn,
    response=AnalyticsSettings)
async def put_analytics_settings(ctx: Ctx) -> web.Response:
    """Raw events and per-reply details (visitors' words) older than this are deleted; the
    aggregated figures are kept."""
    body = await _analytics(ctx).request("PUT", "/internal/analytics/settings",
                                         params={"tenant_id": str(ctx.principal.tenant_id)},
                                         json={"retention_days": ctx.body.retention_days})
    return json_response(AnalyticsSettings.model_validate(body).model_dump(mode="json"))
