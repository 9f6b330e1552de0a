"""Console sign-in (issue 16, docs/console.md): sessions, invites, reset links, and a tenant's
users. Declared with the same Operations as every other route, so the OpenAPI document, the
cross-tenant sweep and the fuzzer cover them; the session cookie itself is checked in auth.py."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from aiohttp import web

from common.web import POOL, ApiError, json_response
from services.gateway import api, auth, ratelimit, repository
from services.gateway.api import Ctx, Operations
from services.gateway.models import (AcceptInviteIn, AdminLoginIn, InviteCreated, InviteIn, InviteInfo, InviteList,
                                     InviteOut, LoginIn, NewPasswordIn, PasswordChangeIn, ResetInfo, ResetLink,
                                     RolePatch, SessionInfo, SwitchTenantIn, TenantRef, UserList, UserOut, UserRef)
from services.gateway.service import RESET_TTL_S, console_link, create_invite
from services.gateway.views import SETTINGS_KEY

op = Operations()


def register(app: web.Application) -> None:
    op.register(app)


INVALID_CREDENTIALS = ("invalid_credentials", "the email or password is not right")
TOO_MANY_ATTEMPTS = ("too_many_attempts", "too many sign-in attempts; wait a little and try again")
SIGN_IN = "Console sign-in"
USERS = "Users and invites"


# --- sessions --------------------------------------------------------------------------------

def _email_key(email: str) -> str:
    # the rate-limit cell names a hash, not the address
    return hashlib.sha256(email.lower().encode()).hexdigest()[:32]


async def _throttled_check(ctx: Ctx, check, *, email: str | None) -> bool:
    """Run a credential check (``check()`` -> bool) within the sign-in limits: failures per
    client IP and per email (known or not, so a lockout says nothing about who exists). A
    success gives its attempt back."""
    request, settings = ctx.request, ctx.request.app[SETTINGS_KEY]
    pool = request.app[POOL]
    cells = [(await request.app[api.CLIENT_IP](request), settings.login_ip_limit)]
    if email is not None:
        cells.append((_email_key(email), settings.login_email_limit))
    for key, limit in cells:
        await ratelimit.enforce(request, pool, key, limit, refusal=TOO_MANY_ATTEMPTS)
    ok = await check()
    if ok:
        for key, limit in cells:
            await ratelimit.give_back(pool, key, limit)
    return ok


async def _password_matches(ctx: Ctx, email: str, user, password: str) -> bool:
    return await _throttled_check(
        ctx, lambda: auth.verify_password(user["password_hash"] if user else None, password), email=email)


def _tenant_ref(tenants, tenant_id) -> TenantRef | None:
    return next((TenantRef(**dict(t)) for t in tenants if t["id"] == tenant_id), None)


async def _session_info(conn, policy: auth.SessionPolicy, *, user_id, email, tenant_id, csrf_token,
                        created_at, last_seen_at) -> SessionInfo:
    tenants = await repository.user_tenants(conn, user_id) if user_id else []
    expires_at = created_at + timedelta(seconds=policy.max_age_s)
    return SessionInfo(user=UserRef(id=user_id, email=email) if user_id else None, admin=user_id is None,
                       tenant=_tenant_ref(tenants, tenant_id), tenants=[TenantRef(**dict(t)) for t in tenants],
                       csrf_token=csrf_token, expires_at=expires_at,
                       idle_expires_at=min(expires_at, last_seen_at + timedelta(seconds=policy.idle_s)))


async def _start_session(ctx: Ctx, conn, *, user=None, tenant_id: uuid.UUID | None = None) -> web.Response:
    """A new session row, its SessionInfo and the cookie (a user's, or the admin's when
    ``user`` is None)."""
    policy = ctx.request.app[auth.POLICY]
    token, token_hash = auth.new_token()
    csrf_token = secrets.token_urlsafe(32)
    user_id = user["id"] if user else None
    if user_id is not None:
        await repository.user_logged_in(conn, user_id)
    row = await repository.create_console_session(conn, token_hash, csrf_token, user_id=user_id, tenant_id=tenant_id)
    info = await _session_info(conn, policy, user_id=user_id, email=user["email"] if user else None,
                               tenant_id=tenant_id, csrf_token=csrf_token, created_at=row["created_at"],
                               last_seen_at=row["last_seen_at"])
    response = json_response(info)
    response.set_cookie(auth.COOKIE, token, max_age=policy.max_age_s, path="/", secure=True, httponly=True,
                        samesite="Lax")
    return response


@op("POST", "/api/v1/auth/login", summary="Sign in with an email and a password", tag=SIGN_IN, auth="public",
    body=LoginIn, response=SessionInfo, extra_responses={
        401: "`invalid_credentials`: the same answer for a wrong password and an unknown email",
        429: "`too_many_attempts`: too many failures from this address or for this email; see Retry-After"})
async def login(ctx: Ctx) -> web.Response:
    """Sets the session cookie (HttpOnly, Secure, SameSite=Lax). The session works in the
    user's first tenant; switch with /auth/switch-tenant."""
    auth.check_origin(ctx.request)
    body: LoginIn = ctx.body
    async with ctx.request.app[POOL].acquire() as conn:
        user = await repository.user_by_email(conn, body.email)
    if not await _password_matches(ctx, body.email, user, body.password):
        raise ApiError(401, *INVALID_CREDENTIALS)
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        tenants = await repository.user_tenants(conn, user["id"])
        return await _start_session(ctx, conn, user=user, tenant_id=tenants[0]["id"] if tenants else None)


@op("POST", "/api/v1/auth/admin-login", summary="Sign in as the platform admin (with ADMIN_API_KEY)", tag=SIGN_IN,
    auth="public", body=AdminLoginIn, response=SessionInfo, extra_responses={
        401: "`invalid_credentials`: not the admin key", 429: "`too_many_attempts`: see Retry-After"})
async def admin_login(ctx: Ctx) -> web.Response:
    """The admin key once, then a session: the console never keeps the key."""
    auth.check_origin(ctx.request)

    async def is_admin() -> bool:
        return auth.is_admin_key(ctx.request, ctx.body.admin_key)
    if not await _throttled_check(ctx, is_admin, email=None):
        raise ApiError(401, "invalid_credentials", "that is not the platform admin key")
    async with ctx.request.app[POOL].acquire() as conn:
        return await _start_session(ctx, conn)


@op("GET", "/api/v1/auth/session", summary="Who is signed in, and the CSRF token", tag=SIGN_IN, auth="session",
    response=SessionInfo)
async def get_session(ctx: Ctx) -> web.Response:
    s = ctx.session
    async with ctx.request.app[POOL].acquire() as conn:
        return json_response(await _session_info(
            conn, ctx.request.app[auth.POLICY], user_id=s.user_id, email=s.email, tenant_id=s.tenant_id,
            csrf_token=s.csrf_token, created_at=s.created_at, last_seen_at=s.last_seen_at))


@op("POST", "/api/v1/auth/logout", summary="Sign out: the session ends on the server at once", tag=SIGN_IN,
    auth="session", status=204)
async def logout(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        await repository.delete_console_session(conn, ctx.session.id)
    response = web.Response(status=204)
    response.del_cookie(auth.COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    return response


def _user_session(ctx: Ctx) -> auth.Session:
    if ctx.session.admin:
        raise ApiError(403, "not_a_user", "the platform admin has no tenants or password here")
    return ctx.session


@op("POST", "/api/v1/auth/switch-tenant", summary="Work in another of your tenants", tag=SIGN_IN, auth="session",
    body=SwitchTenantIn, response=SessionInfo, extra_responses={403: "`not_a_member` of that tenant"})
async def switch_tenant(ctx: Ctx) -> web.Response:
    s = _user_session(ctx)
    async with ctx.request.app[POOL].acquire() as conn:
        tenants = await repository.user_tenants(conn, s.user_id)
        if _tenant_ref(tenants, ctx.body.tenant_id) is None:
            raise ApiError(403, "not_a_member", "you are not a member of that tenant")
        await repository.switch_session_tenant(conn, s.id, ctx.body.tenant_id)
        return json_response(await _session_info(
            conn, ctx.request.app[auth.POLICY], user_id=s.user_id, email=s.email, tenant_id=ctx.body.tenant_id,
            csrf_token=s.csrf_token, created_at=s.created_at, last_seen_at=s.last_seen_at))


@op("POST", "/api/v1/auth/password", summary="Change your password", tag=SIGN_IN, auth="session",
    body=PasswordChangeIn, status=204, extra_responses={
        401: "`invalid_credentials`: the current password is not right", 429: "`too_many_attempts`"})
async def change_password(ctx: Ctx) -> web.Response:
    """Your other sessions end; this one goes on."""
    s = _user_session(ctx)
    async with ctx.request.app[POOL].acquire() as conn:
        user = await repository.get_user(conn, s.user_id)
    if not await _password_matches(ctx, s.email, user, ctx.body.current_password):
        raise ApiError(401, "invalid_credentials", "the current password is not right")
    password_hash = await auth.hash_password(ctx.body.new_password)
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        await repository.set_password(conn, s.user_id, password_hash)
        await repository.revoke_user_sessions(conn, s.user_id, keep=s.id)
    return web.Response(status=204)


# --- invites and reset links (public: the token is the credential) ----------------------------

async def _live(conn, kind: str, token: str, *, lock: bool = False):
    """The invite or reset link a token names: 404 unknown, 410 used or expired."""
    if len(token) > 200:
        raise ApiError(404, "not_found", f"no such {kind} link")
    row = await repository.link_by_token(conn, kind, auth.hash_secret(token), lock=lock)
    if row is None:
        raise ApiError(404, "not_found", f"no such {kind} link")
    if row["used_at"] is not None:
        raise ApiError(410, f"{kind}_used", f"this {kind} link was used already; ask an owner for a new one")
    if row["expired"]:
        raise ApiError(410, f"{kind}_expired", f"this {kind} link has expired; ask an owner for a new one")
    return row


GONE = {410: "Used or expired (`invite_used`, `invite_expired`, `reset_used`, `reset_expired`)"}


@op("GET", "/api/v1/auth/invites/{token}", summary="What an invite link offers", tag=SIGN_IN, auth="public",
    response=InviteInfo, extra_responses=GONE)
async def get_invite(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        invite = await _live(conn, "invite", ctx.request.match_info["token"])
        user = await repository.user_by_email(conn, invite["email"])
    return json_response(InviteInfo(email=invite["email"], tenant_name=invite["tenant_name"], role=invite["role"],
                                    expires_at=invite["expires_at"], existing_user=user is not None))


@op("POST", "/api/v1/auth/invites/{token}/accept", summary="Accept an invite and sign in", tag=SIGN_IN,
    auth="public", body=AcceptInviteIn, response=SessionInfo, extra_responses={
        **GONE, 401: "`invalid_credentials`: an existing user's password is not right",
        409: "`conflict`: the same person accepted another invite at the same moment; try again",
        429: "`too_many_attempts`"})
async def accept_invite(ctx: Ctx) -> web.Response:
    """A new user's password becomes theirs; an existing user proves theirs. Either way they
    join the tenant (keeping their role if they already belong) and are signed in to it."""
    auth.check_origin(ctx.request)
    token, password = ctx.request.match_info["token"], ctx.body.password
    pool = ctx.request.app[POOL]
    async with pool.acquire() as conn:
        invite = await _live(conn, "invite", token)
        user = await repository.user_by_email(conn, invite["email"])
    if user is not None:
        if not await _password_matches(ctx, invite["email"], user, password):
            raise ApiError(401, *INVALID_CREDENTIALS)
        password_hash = None
    else:
        password_hash = await auth.hash_password(password)
    async with pool.acquire() as conn, conn.transaction():
        invite = await _live(conn, "invite", token, lock=True)  # one of two racing accepts wins
        if user is None:
            if await repository.user_by_email(conn, invite["email"]) is not None:
                raise ApiError(409, "conflict", "this person signed up a moment ago; open the link again")
            user = await repository.create_user(conn, invite["email"], password_hash)
        await repository.add_membership(conn, user["id"], invite["tenant_id"], invite["role"])
        await repository.use_link(conn, "invite", invite["id"])
        return await _start_session(ctx, conn, user=user, tenant_id=invite["tenant_id"])


@op("GET", "/api/v1/auth/resets/{token}", summary="Whose password a reset link sets", tag=SIGN_IN, auth="public",
    response=ResetInfo, extra_responses=GONE)
async def get_reset(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        reset = await _live(conn, "reset", ctx.request.match_info["token"])
    return json_response(ResetInfo(email=reset["email"]))


@op("POST", "/api/v1/auth/resets/{token}", summary="Set a new password with a reset link", tag=SIGN_IN,
    auth="public", body=NewPasswordIn, status=204, extra_responses=GONE)
async def use_reset(ctx: Ctx) -> web.Response:
    """Every session of the user ends, and their sign-in lockout is lifted; then sign in."""
    auth.check_origin(ctx.request)
    token = ctx.request.match_info["token"]
    password_hash = await auth.hash_password(ctx.body.password)
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        reset = await _live(conn, "reset", token, lock=True)
        await repository.set_password(conn, reset["user_id"], password_hash)
        await repository.use_link(conn, "reset", reset["id"])
        await repository.revoke_user_sessions(conn, reset["user_id"])
        await ratelimit.forget(conn, _email_key(reset["email"]))
    ctx.request.app[ratelimit.REFUSED].pop(f"login_email:{_email_key(reset['email'])}", None)
    return web.Response(status=204)


# --- a tenant's users and invites (need "manage": owners, and full API keys) ------------------

def _user_out(row) -> UserOut:
    return UserOut(id=row["id"], email=row["email"], role=row["role"], created_at=row["joined_at"],
                   last_login_at=row["last_login_at"])


@op("GET", "/api/v1/users", summary="Your tenant's users and their roles", tag=USERS, need="manage",
    response=UserList)
async def list_users(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.tenant_users(conn, ctx.principal.tenant_id)
    return json_response(UserList(data=[_user_out(r) for r in rows]))


async def _member(ctx: Ctx, conn):
    rows = await repository.tenant_users(conn, ctx.principal.tenant_id, uuid.UUID(ctx.request.match_info["user_id"]))
    if not rows:
        raise ApiError(404, "not_found", "no such user in your tenant")
    return rows[0]


async def _keep_an_owner(ctx: Ctx, conn, member, new_role: str | None) -> None:
    """A tenant always keeps one owner (the tenant row is locked, so two changes cannot both
    take the last one)."""
    await repository.get_tenant(conn, ctx.principal.tenant_id, lock=True)
    if member["role"] == "owner" and new_role != "owner" and \
            await repository.count_owners(conn, ctx.principal.tenant_id) <= 1:
        raise ApiError(409, "last_owner", "a tenant needs an owner: make someone else owner first")


LAST_OWNER = {409: "`last_owner`: the tenant would have no owner left"}


@op("PATCH", "/api/v1/users/{user_id}", summary="Change a user's role", tag=USERS, need="manage", body=RolePatch,
    response=UserOut, extra_responses=LAST_OWNER)
async def change_role(ctx: Ctx) -> web.Response:
    """Takes effect on the user's next request."""
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        member = await _member(ctx, conn)
        await _keep_an_owner(ctx, conn, member, ctx.body.role)
        await repository.set_role(conn, ctx.principal.tenant_id, member["id"], ctx.body.role)
        return json_response(_user_out({**dict(member), "role": ctx.body.role}))


@op("DELETE", "/api/v1/users/{user_id}", summary="Remove a user from your tenant", tag=USERS, need="manage",
    status=204, extra_responses=LAST_OWNER)
async def remove_user(ctx: Ctx) -> web.Response:
    """Their sessions in this tenant end at once; their other tenants keep them."""
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        member = await _member(ctx, conn)
        await _keep_an_owner(ctx, conn, member, None)
        await repository.remove_membership(conn, ctx.principal.tenant_id, member["id"])
    return web.Response(status=204)


@op("POST", "/api/v1/users/{user_id}/reset-link", summary="A password reset link for one of your users",
    tag=USERS, need="manage", response=ResetLink, status=201, extra_responses={
        409: "`user_in_other_tenants`: the user also belongs to another tenant, whose owners you are not"})
async def create_reset_link(ctx: Ctx) -> web.Response:
    """Single-use, valid for an hour; no mail is sent, so hand the link over yourself. A user
    who also belongs to another tenant changes their own password instead: a password opens
    every tenant of its user."""
    async with ctx.request.app[POOL].acquire() as conn:
        member = await _member(ctx, conn)
        if await repository.other_memberships(conn, member["id"], ctx.principal.tenant_id):
            raise ApiError(409, "user_in_other_tenants",
                           "this user also belongs to another tenant; they can change their password when "
                           "signed in, or an owner of every tenant they belong to can help")
        token, token_hash = auth.new_token()
        row = await repository.create_password_reset(conn, token_hash, member["id"], ctx.principal.tenant_id,
                                                     RESET_TTL_S, ctx.principal.user_id)
    url = console_link(ctx.request.app[SETTINGS_KEY].public_base_url, "reset", token)
    return json_response(ResetLink(url=url, token=token, expires_at=row["expires_at"]), status=201)


@op("POST", "/api/v1/invites", summary="Invite someone to your tenant", tag=USERS, need="manage", body=InviteIn,
    response=InviteCreated, status=201, extra_responses={409: "`already_member`: that person is in your tenant"})
async def invite_user(ctx: Ctx) -> web.Response:
    """The link (single-use, valid for 7 days) is in the answer; no mail is sent."""
    async with ctx.request.app[POOL].acquire() as conn, conn.transaction():
        user = await repository.user_by_email(conn, ctx.body.email)
        if user is not None and await repository.tenant_users(conn, ctx.principal.tenant_id, user["id"]):
            raise ApiError(409, "already_member", "that person is already in your tenant")
        row, token, url = await create_invite(conn, ctx.request.app[SETTINGS_KEY].public_base_url,
                                              ctx.principal.tenant_id, ctx.body.email, ctx.body.role,
                                              ctx.principal.user_id)
    return json_response(InviteCreated(**dict(row), url=url, token=token), status=201)


@op("GET", "/api/v1/invites", summary="Invites not yet accepted or expired", tag=USERS, need="manage",
    response=InviteList)
async def list_invites(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        rows = await repository.pending_invites(conn, ctx.principal.tenant_id)
    return json_response(InviteList(data=[InviteOut(**dict(r)) for r in rows]))


@op("DELETE", "/api/v1/invites/{invite_id}", summary="Withdraw an invite", tag=USERS, need="manage", status=204)
async def withdraw_invite(ctx: Ctx) -> web.Response:
    async with ctx.request.app[POOL].acquire() as conn:
        deleted = await repository.delete_invite(conn, ctx.principal.tenant_id,
                                                 uuid.UUID(ctx.request.match_info["invite_id"]))
    if not deleted:
        raise ApiError(404, "not_found", "no such invite")
    return web.Response(status=204)
