"""Tenant and admin REST API under /api/v1."""
from __future__ import annotations

import secrets
import uuid

from aiohttp import web

from common import events as ev
from common.db import enqueue
from common.web import POOL, ApiError, json_response
from common import pagination
from services.gateway import auth, repository
from services.gateway.service import create_invite, month_start, snapshot
from services.gateway.api import Ctx, Operations
from services.gateway.clients import CONVERSATION, INTERNAL
from services.gateway.models import (AdminTenantPatch, ApiKeyIn, ApiKeyOut, ApiKeyPage, ChatbotIn, ChatbotOut,
                                     ChatbotPage, ChatbotPatch, ConversationPage, ConversationQuery, EmbedSnippet,
                                     InviteLink, PageQuery, PlanLimits, PlanUsage, TenantConversationQuery,
                                     TenantCreated, TenantDeleteIn, TenantIn, TenantOut, TenantPage, TenantPatch,
                                     TenantQuery, TenantWithUsage, Transcript)
from services.gateway.settings import Settings


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


SETTINGS_KEY = web.AppKey("gateway_settings", Settings)


def tenant_out(row) -> TenantOut:
    return TenantOut(id=row["id"], name=row["name"], created_at=row["created_at"], limits=PlanLimits(
        max_chatbots=row["max_chatbots"], max_documents=row["max_documents"],
        monthly_message_quota=row["monthly_message_quota"]))


def chatbot_out(row) -> ChatbotOut:
    return ChatbotOut.model_validate({"id": row["id"], "name": row["name"], "embed_id": row["embed_id"],
                                      "created_at": row["created_at"], "updated_at": row["updated_at"],
                                      **row["config"]}, strict=False)


async def _usage(conn, tenant) -> PlanUsage:
    month = month_start()
    return PlanUsage(month=month.isoformat(), messages=await repository.messages_this_month(conn, tenant["id"], month),
                 monthly_message_quota=tenant["monthly_message_quota"],
                 chatbots=await repository.count_chatbots(conn, tenant["id"]), max_chatbots=tenant["max_chatbots"])


# --- admin -----------------------------------------------------------------------------------

@op("POST", "/api/v1/admin/tenants", summary="Create a tenant and its first API key", tag="Admin", auth="admin",
    body=TenantIn, response=TenantCreated, status=201)
async def create_tenant(ctx: Ctx) -> web.Response:
    """Sign-up is done by a platform admin. The tenant's first key (scope `full`) is returned once;
    with `owner_email`, so is the invite link of its first owner (docs/console.md)."""
    body: TenantIn = ctx.body
    key_id, full_key, secret_hash = auth.new_api_key()
    owner_invite = None
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        tenant = await repository.create_tenant(conn, body.name, body.limits.model_dump())
        key = await repository.create_api_key(conn, key_id, tenant["id"], secret_hash, "full", "default")
        if body.owner_email is not None:
            invite, token, url = await create_invite(conn, ctx.request.app[SETTINGS_KEY].public_base_url,
                                                     tenant["id"], body.owner_email, "owner", None)
            owner_invite = InviteLink(url=url, token=token, expires_at=invite["expires_at"])
    return json_response(TenantCreated(tenant=tenant_out(tenant), api_key=ApiKeyOut(**dict(key), key=full_key),
                                       owner_invite=owner_invite), status=201)


@op("GET", "/api/v1/admin/tenants", summary="List tenants", tag="Admin", auth="admin", query=TenantQuery,
    response=TenantPage)
async def list_tenants(ctx: Ctx) -> web.Response:
    """Oldest first by default, or newest first; `q` finds tenants by name."""
    q: TenantQuery = ctx.query
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.list_tenants(conn, pagination.decode(q.cursor), q.limit + 1, name=q.q,
                                             newest_first=q.order == "newest")
    return json_response(pagination.page(rows, ctx.query.limit, lambda r: tenant_out(r).model_dump(mode="json")))


@op("GET", "/api/v1/admin/tenants/{tenant_id}", summary="Get a tenant with its usage", tag="Admin", auth="admin",
    response=TenantWithUsage)
async def admin_get_tenant(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.get_tenant(conn, uuid.UUID(ctx.request.match_info["tenant_id"]))
        if tenant is None:
            raise ApiError(404, "not_found", "no such tenant")
        return json_response(TenantWithUsage(**tenant_out(tenant).model_dump(), usage=await _usage(conn, tenant)))


@op("PATCH", "/api/v1/admin/tenants/{tenant_id}", summary="Change a tenant's name or plan limits", tag="Admin",
    auth="admin", body=AdminTenantPatch, response=TenantOut)
async def admin_update_tenant(ctx: Ctx) -> web.Response:
    body: AdminTenantPatch = ctx.body
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.update_tenant(
            conn, uuid.UUID(ctx.request.match_info["tenant_id"]), name=body.name,
            limits=body.limits.model_dump(exclude_none=True) if body.limits else None)
    if tenant is None:
        raise ApiError(404, "not_found", "no such tenant")
    return json_response(tenant_out(tenant))


async def _delete_tenant(ctx: Ctx, tenant_id: uuid.UUID, confirm: str | None = None) -> web.Response:
    """The tenant's rows here go with TenantDeletedEvent in one transaction (the outbox):
    every other service then erases that tenant's rows and files."""
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        tenant = await repository.get_tenant(conn, tenant_id, lock=True)
        if tenant is None:
            raise ApiError(404, "not_found", "no such tenant")
        if confirm is not None and confirm not in (str(tenant["id"]), tenant["name"]):
            raise ApiError(409, "confirmation_mismatch",
                           "to delete your tenant, send its id or its exact name as `confirm`")
        await repository.delete_tenant(conn, tenant_id)
        await enqueue(conn, ev.TenantDeletedEvent(tenant_id=tenant_id))
    return web.Response(status=204)


@op("DELETE", "/api/v1/admin/tenants/{tenant_id}", summary="Delete a tenant and all of its data", tag="Admin",
    auth="admin", status=204)
async def admin_delete_tenant(ctx: Ctx) -> web.Response:
    """Its keys stop working at once; every service then erases the tenant's chatbots,
    conversations, knowledge, avatars, ledger and analytics (TenantDeletedEvent)."""
    return await _delete_tenant(ctx, uuid.UUID(ctx.request.match_info["tenant_id"]))


# --- the tenant itself -----------------------------------------------------------------------

@op("DELETE", "/api/v1/tenant", summary="Delete your tenant and all of its data", tag="Tenant", need="manage",
    body=TenantDeleteIn, status=204, extra_responses={409: "`confirm` is not your tenant's id or name: nothing was deleted"})
async def delete_own_tenant(ctx: Ctx) -> web.Response:
    """For good: your keys stop working at once, and every service erases your chatbots,
    conversations, knowledge, avatars, ledger and analytics. Send `{"confirm": "<your tenant's
    id or exact name>"}`. Needs a `full` key."""
    return await _delete_tenant(ctx, ctx.principal.tenant_id, ctx.body.confirm)


@op("GET", "/api/v1/tenant", summary="Your tenant, plan limits and this month's usage", tag="Tenant",
    response=TenantWithUsage)
async def get_tenant(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.get_tenant(conn, ctx.principal.tenant_id)
        return json_response(TenantWithUsage(**tenant_out(tenant).model_dump(), usage=await _usage(conn, tenant)))


@op("PATCH", "/api/v1/tenant", summary="Rename your tenant", tag="Tenant", need="manage", body=TenantPatch,
    response=TenantOut)
async def update_tenant(ctx: Ctx) -> web.Response:
    """Plan limits are not yours to change: only the platform admin can."""
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.update_tenant(conn, ctx.principal.tenant_id, name=ctx.body.name)
    return json_response(tenant_out(tenant))


@op("GET", "/api/v1/tenant/usage", summary="This month's usage against the plan", tag="Tenant", response=PlanUsage)
async def get_usage(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        tenant = await repository.get_tenant(conn, ctx.principal.tenant_id)
        return json_response(await _usage(conn, tenant))


# --- API keys --------------------------------------------------------------------------------

@op("POST", "/api/v1/api-keys", summary="Create an API key", tag="API keys", need="manage", body=ApiKeyIn,
    response=ApiKeyOut, status=201)
async def create_api_key(ctx: Ctx) -> web.Response:
    """The full key is in the response once; we keep only a hash. Scopes: `full`, `read` (GET only),
    `chat` (the chat endpoints only)."""
    key_id, full_key, secret_hash = auth.new_api_key()
    limit = ctx.request.app[SETTINGS_KEY].max_api_keys_per_tenant
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        await repository.get_tenant(conn, ctx.principal.tenant_id, lock=True)  # serialises the count
        if await repository.count_active_api_keys(conn, ctx.principal.tenant_id) >= limit:
            raise ApiError(403, "plan_limit_reached", f"a tenant may hold {limit} API keys; revoke one first",
                           {"limit": "max_api_keys", "value": limit})
        row = await repository.create_api_key(conn, key_id, ctx.principal.tenant_id, secret_hash,
                                              ctx.body.scope, ctx.body.name)
    return json_response(ApiKeyOut(**dict(row), key=full_key), status=201)


@op("GET", "/api/v1/api-keys", summary="List API keys (never their secrets)", tag="API keys", need="manage",
    query=PageQuery, response=ApiKeyPage)
async def list_api_keys(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.list_api_keys(conn, ctx.principal.tenant_id,
                                              pagination.decode(ctx.query.cursor, uuid_ids=False), ctx.query.limit + 1)
    return json_response(pagination.page(rows, ctx.query.limit, lambda r: ApiKeyOut(**dict(r)).model_dump(mode="json")))


@op("DELETE", "/api/v1/api-keys/{key_id}", summary="Revoke an API key (effective at once)", tag="API keys",
    need="manage", response=ApiKeyOut)
async def revoke_api_key(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        row = await repository.revoke_api_key(conn, ctx.principal.tenant_id, ctx.request.match_info["key_id"])
    if row is None:
        raise ApiError(404, "not_found", "no such API key")
    return json_response(ApiKeyOut(**dict(row)))


# --- chatbots --------------------------------------------------------------------------------

async def _owned_chatbot(ctx: Ctx, conn, *, lock: bool = False):
    row = await repository.get_chatbot(conn, ctx.principal.tenant_id,
                                       uuid.UUID(ctx.request.match_info["chatbot_id"]), lock=lock)
    if row is None:
        raise ApiError(404, "not_found", "no such chatbot")
    return row


async def assign_avatar(app: web.Application, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                        avatar_id: str | None) -> dict:
    """Tell the avatar service which avatar a chatbot shows. It refuses an avatar that is not
    the tenant's (404), and its copy of the choice (what the widget plays) stays current."""
    return await app[INTERNAL]["avatar"].request("PUT", f"/internal/chatbots/{chatbot_id}/avatar",
                                                 params={"tenant_id": str(tenant_id)}, json={"avatar_id": avatar_id})


@op("POST", "/api/v1/chatbots", summary="Create a chatbot", tag="Chatbots", body=ChatbotIn, response=ChatbotOut,
    status=201)
async def create_chatbot(ctx: Ctx) -> web.Response:
    body: ChatbotIn = ctx.body
    chatbot_id = uuid.uuid4()
    if body.avatar_id is not None:
        # the avatar service refuses another tenant's avatar (404) before anything is created;
        # if the plan then refuses the chatbot, deleting the avatar lets the unused choice go
        await assign_avatar(ctx.request.app, ctx.principal.tenant_id, chatbot_id, str(body.avatar_id))
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        tenant = await repository.get_tenant(conn, ctx.principal.tenant_id, lock=True)  # serialises the count
        if await repository.count_chatbots(conn, tenant["id"]) >= tenant["max_chatbots"]:
            raise ApiError(403, "plan_limit_reached", f"your plan allows {tenant['max_chatbots']} chatbots",
                           {"limit": "max_chatbots", "value": tenant["max_chatbots"]})
        row = await repository.create_chatbot(conn, tenant["id"], secrets.token_urlsafe(18), body.name,
                                              body.model_dump(mode="json", exclude={"name", "avatar_id"}),
                                              chatbot_id=chatbot_id)
        # the event commits with the chatbot (outbox): a crash cannot keep one without the other
        await enqueue(conn, ev.ChatbotCreatedEvent(tenant_id=row["tenant_id"], chatbot=snapshot(row)))
    return json_response(chatbot_out(row), status=201)


@op("GET", "/api/v1/chatbots", summary="List chatbots", tag="Chatbots", query=PageQuery, response=ChatbotPage)
async def list_chatbots(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.list_chatbots(conn, ctx.principal.tenant_id, pagination.decode(ctx.query.cursor),
                                              ctx.query.limit + 1)
    return json_response(pagination.page(rows, ctx.query.limit, lambda r: chatbot_out(r).model_dump(mode="json")))


@op("GET", "/api/v1/chatbots/{chatbot_id}", summary="Get a chatbot", tag="Chatbots", response=ChatbotOut)
async def get_chatbot(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        return json_response(chatbot_out(await _owned_chatbot(ctx, conn)))


CLEARABLE = {"avatar_id", "ai.fallback_provider"}


def merge(config: dict, patch: dict) -> dict:
    merged = dict(config)
    for key, value in patch.items():
        merged[key] = merge(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


@op("PATCH", "/api/v1/chatbots/{chatbot_id}", summary="Change a chatbot", tag="Chatbots", body=ChatbotPatch,
    response=ChatbotOut)
async def update_chatbot(ctx: Ctx) -> web.Response:
    """Send only what changes; nested settings merge field by field. `null` clears
    `avatar_id` (back to the default avatar) and `ai.fallback_provider`."""
    patch = ctx.body.model_dump(mode="json", exclude_unset=True)
    # null means "no change", except for the references that can be cleared
    patch = {k: v for k, v in patch.items() if v is not None or k in CLEARABLE}
    for section in ("persona", "placement", "ai", "knowledge"):
        if isinstance(patch.get(section), dict):
            patch[section] = {k: v for k, v in patch[section].items()
                              if v is not None or f"{section}.{k}" in CLEARABLE}
    if "avatar_id" in patch:
        async with ctx.request.app[POOL].acquire() as conn:
            owned = await _owned_chatbot(ctx, conn)
        # the avatar service alone keeps which avatar a chatbot shows
        await assign_avatar(ctx.request.app, owned["tenant_id"], owned["id"], patch.pop("avatar_id"))
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        row = await _owned_chatbot(ctx, conn, lock=True)
        name = patch.pop("name", None) or row["name"]
        config = ChatbotIn.model_validate({"name": name, **merge(row["config"], patch)}, strict=False)
        row = await repository.update_chatbot(conn, row["tenant_id"], row["id"], name,
                                              config.model_dump(mode="json", exclude={"name"}))
        await enqueue(conn, ev.ChatbotUpdatedEvent(tenant_id=row["tenant_id"], chatbot=snapshot(row)))
    return json_response(chatbot_out(row))


@op("DELETE", "/api/v1/chatbots/{chatbot_id}", summary="Delete a chatbot", tag="Chatbots", status=204)
async def delete_chatbot(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        row = await _owned_chatbot(ctx, conn, lock=True)
        await repository.delete_chatbot(conn, row["tenant_id"], row["id"])
        await repository.delete_chatbot_sessions(conn, row["tenant_id"], row["id"])
        # every service that keeps something of the chatbot erases it (knowledge, avatar,
        # conversation, ai, analytics): docs/architecture.md, "Lifecycles"
        await enqueue(conn, ev.ChatbotDeletedEvent(tenant_id=row["tenant_id"], chatbot_id=row["id"]))
    return web.Response(status=204)


@op("GET", "/api/v1/chatbots/{chatbot_id}/embed-snippet", summary="The script tag to paste into your site",
    tag="Chatbots", response=EmbedSnippet)
async def embed_snippet(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        row = await _owned_chatbot(ctx, conn)
    base = ctx.request.app[SETTINGS_KEY].public_base_url.rstrip("/")
    script = f"{base}/embed.js"
    return json_response(EmbedSnippet(embed_id=row["embed_id"], script_url=script,
                                      snippet=f'<script src="{script}" data-embed-id="{row["embed_id"]}" defer></script>'))


# --- conversations (the tenant's view) -------------------------------------------------------

@op("GET", "/api/v1/chatbots/{chatbot_id}/conversations", summary="List a chatbot's conversations",
    tag="Conversations", query=ConversationQuery, response=ConversationPage)
async def list_conversations(ctx: Ctx) -> web.Response:
    """Newest first; filter by time (`from`, `to`), visitor, handoff and rating."""
    async with ctx.request.app[POOL].acquire() as conn:
        row = await _owned_chatbot(ctx, conn)
    return await _conversations(ctx, {"chatbot_id": str(row["id"])})


@op("GET", "/api/v1/conversations", summary="List the tenant's conversations", tag="Conversations",
    query=TenantConversationQuery, response=ConversationPage)
async def list_tenant_conversations(ctx: Ctx) -> web.Response:
    """Every chatbot's conversations, newest first, with the same filters (and `chatbot_id`)."""
    q: TenantConversationQuery = ctx.query
    return await _conversations(ctx, {"chatbot_id": str(q.chatbot_id)} if q.chatbot_id else {})


async def _conversations(ctx: Ctx, scope: dict[str, str]) -> web.Response:
    q: ConversationQuery = ctx.query
    params = {"tenant_id": str(ctx.principal.tenant_id), "limit": str(q.limit), **scope}
    for name, value in (("cursor", q.cursor), ("from", q.since and q.since.isoformat()),
                        ("to", q.until and q.until.isoformat()), ("visitor_id", q.visitor_id and str(q.visitor_id)),
                        ("handoff", None if q.handoff is None else str(q.handoff).lower()), ("rating", q.rating)):
        if value:
            params[name] = value
    return json_response(await ctx.request.app[CONVERSATION].request("GET", "/internal/conversations", params=params))


@op("GET", "/api/v1/conversations/{conversation_id}", summary="A conversation's transcript", tag="Conversations",
    response=Transcript)
async def get_transcript(ctx: Ctx) -> web.Response:
    body = await ctx.request.app[CONVERSATION].request(
        "GET", f"/internal/conversations/{ctx.request.match_info['conversation_id']}/transcript",
        params={"tenant_id": str(ctx.principal.tenant_id)})
    return json_response(body)


@op("DELETE", "/api/v1/conversations/{conversation_id}/visitor-session",
    summary="Revoke a visitor's access to a conversation", tag="Conversations", status=204)
async def revoke_visitor_session(ctx: Ctx) -> web.Response:
    """Every visitor token of this widget conversation stops working at once, refreshes
    included; the visitor can start a new conversation. The transcript stays."""
    async with ctx.request.app[POOL].acquire() as conn:
        revoked = await repository.revoke_visitor_session(conn, ctx.principal.tenant_id,
                                                          uuid.UUID(ctx.request.match_info["conversation_id"]))
    if not revoked:
        raise ApiError(404, "not_found", "no such widget conversation")
    return web.Response(status=204)
