"""Who is calling: tenant API keys (``ak_live_<id>_<secret>``, stored as a hash), console
sessions (an opaque cookie whose hash is a server-side row, docs/console.md), the platform
admin (its key, or an admin session), and signed visitor tokens."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.web import POOL, ApiError
from services.gateway import repository

KEY_PREFIX = "ak_live_"
ADMIN_KEY = web.AppKey("admin_api_key", str)
COOKIE = "__Host-avatarchat_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# what each key scope may do: "read" keys only read, "chat" keys only chat; "full" keys
# everything, managing keys and users ("manage") included
SCOPES = {"full": frozenset({"read", "write", "chat", "manage"}), "read": frozenset({"read"}),
          "chat": frozenset({"chat"})}
# what each console role may do (the same needs the routes declare)
ROLES = {"owner": frozenset({"read", "write", "chat", "manage"}), "editor": frozenset({"read", "write", "chat"}),
         "viewer": frozenset({"read"})}


@dataclass(frozen=True)
class SessionPolicy:
    """How console sessions live: set once by the app from its settings."""
    idle_s: int
    max_age_s: int
    origins: frozenset[str]  # the platform's own origin(s), for the CSRF check
    touch_every_s: int = 60  # last_seen_at is written at most this often


POLICY = web.AppKey("session_policy", SessionPolicy)


def origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Principal:
    """A tenant's caller: an API key (``key_id``, ``scope``) or a user's session (``user_id``,
    ``role``); ``needs`` is what it may do either way."""
    tenant_id: uuid.UUID
    key_id: str | None
    scope: str | None
    needs: frozenset[str] = frozenset()
    user_id: uuid.UUID | None = None
    role: str | None = None
    session_id: uuid.UUID | None = None

    @property
    def rate_key(self) -> str:
        """Whose rate-limit budget a request spends: the key's, or the user's."""
        return self.key_id or f"user:{self.user_id}"

    def require(self, need: str) -> None:
        if need in self.needs:
            return
        if self.key_id is not None:
            raise ApiError(403, "insufficient_scope", f"a {self.scope!r} key cannot {need} here")
        raise ApiError(403, "insufficient_role", f"a {self.role or 'platform admin'} cannot {need} here")


@dataclass(frozen=True)
class Session:
    """A console session's row, as the request that presented its cookie sees it."""
    id: uuid.UUID
    user_id: uuid.UUID | None
    email: str | None
    admin: bool
    tenant_id: uuid.UUID | None
    role: str | None  # the user's role in tenant_id (None when no longer a member)
    csrf_token: str
    created_at: object
    last_seen_at: object


def new_api_key() -> tuple[str, str, bytes]:
    """(key id, the full key shown once, the hash we keep)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    # the secret is 256 random bits, so a fast hash is enough (no dictionary to attack); the
    # same holds for session, invite and reset tokens
    return hashlib.sha256(secret.encode()).digest()


def new_token() -> tuple[str, bytes]:
    """(a random token to hand out once, the hash we keep)."""
    token = secrets.token_urlsafe(32)
    return token, hash_secret(token)


# --- passwords -------------------------------------------------------------------------------

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): each hash is CPU- and
# memory-bound, so hashes run on two threads of their own, never on the event loop, and a
# burst of sign-ins queues there instead of taking every core and a lot of memory at once
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
_DUMMY_HASH: str | None = None


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    global _DUMMY_HASH
    if stored is None:
        # an unknown email costs the same time as a known one, so timing tells nothing
        _DUMMY_HASH = _DUMMY_HASH or _HASHER.hash(secrets.token_urlsafe(16))
        _verify(_DUMMY_HASH, password)
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user, checked against a dummy)."""
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _verify, stored, password)


# --- API keys and the admin key --------------------------------------------------------------

def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer ak_live_...'")
    return header[7:].strip()


def _has_bearer(request: web.Request) -> bool:
    return "Authorization" in request.headers


def is_admin_key(request: web.Request, candidate: str) -> bool:
    return hmac.compare_digest(candidate.encode(), request.app[ADMIN_KEY].encode())


async def require_admin(request: web.Request) -> None:
    """The platform admin: its key as a Bearer token, or an admin session (with CSRF)."""
    if _has_bearer(request) or COOKIE not in request.cookies:
        if not is_admin_key(request, _bearer(request)):
            raise ApiError(401, "unauthorized", "this route needs the platform admin key or an admin session")
        return
    session = await current_session(request)
    if not session.admin:
        raise ApiError(401, "unauthorized", "this route needs the platform admin key or an admin session")


async def authenticate(request: web.Request) -> Principal:
    """A tenant's caller: the Bearer API key when one is sent, else the session cookie."""
    if not _has_bearer(request) and COOKIE in request.cookies:
        return tenant_principal(await current_session(request))
    token = _bearer(request)
    if not token.startswith(KEY_PREFIX) or token.count("_") < 3 or len(token) > 200:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    key_id, _, secret = token[len(KEY_PREFIX):].partition("_")
    if len(key_id) != 16:
        raise ApiError(401, "unauthorized", "the API key is not valid")
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_api_key(conn, key_id)
    if row is None or row["revoked_at"] is not None or \
            not hmac.compare_digest(row["secret_hash"], hash_secret(secret)):
        raise ApiError(401, "unauthorized", "the API key is not valid")
    return Principal(row["tenant_id"], key_id, row["scope"], SCOPES.get(row["scope"], frozenset()))


def tenant_principal(session: Session) -> Principal:
    if session.admin:
        raise ApiError(401, "unauthorized", "the platform admin's session does not open a tenant's routes; "
                                            "use a tenant API key or a tenant user's session")
    if session.tenant_id is None or session.role is None:
        raise ApiError(403, "no_tenant", "you are not a member of this tenant any more; switch to another")
    return Principal(session.tenant_id, None, None, ROLES[session.role], user_id=session.user_id,
                     role=session.role, session_id=session.id)


# --- console sessions ------------------------------------------------------------------------

def check_origin(request: web.Request) -> None:
    """A browser names the page that sent a request in Origin: it must be the platform's own
    (a request without Origin comes from no cross-site page)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in request.app[POLICY].origins:
        raise ApiError(403, "csrf_failed", "this request came from another site")


def check_csrf(request: web.Request, session: Session) -> None:
    """Every state-changing request a session cookie authenticates carries the session's CSRF
    token in X-CSRF-Token (a cross-site page cannot read it) and, if any, our own Origin."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(403, "csrf_failed", f"send the session's csrf_token in {CSRF_HEADER}")


SESSION = web.RequestKey("console_session", Session)


async def current_session(request: web.Request) -> Session:
    """The session the cookie names: live (not revoked, not idle too long, not too old), with
    its CSRF token checked on state-changing requests. Its last_seen_at moves at most once a
    minute."""
    if SESSION in request:
        return request[SESSION]
    token = request.cookies.get(COOKIE, "")
    if not token or len(token) > 200:
        raise ApiError(401, "unauthorized", "sign in first")
    policy = request.app[POLICY]
    async with request.app[POOL].acquire() as conn:
        row = await repository.get_console_session(conn, hash_secret(token))
        if row is None or row["revoked_at"] is not None:
            raise ApiError(401, "unauthorized", "your session has ended; sign in again")
        if row["idle_s"] > policy.idle_s or row["age_s"] > policy.max_age_s:
            raise ApiError(401, "session_expired", "your session has expired; sign in again")
        if row["idle_s"] > policy.touch_every_s:
            row = {**dict(row), "last_seen_at": await repository.touch_console_session(conn, row["id"])}
    session = Session(row["id"], row["user_id"], row["email"], row["is_admin"], row["tenant_id"], row["role"],
                      row["csrf_token"], row["created_at"], row["last_seen_at"])
    check_csrf(request, session)
    request[SESSION] = session
    return session


def issue_visitor_token(secret: str, *, tenant_id: uuid.UUID, embed_id: str, conversation_id: uuid.UUID,
                        visitor_id: uuid.UUID, ttl_s: int) -> str:
    now = int(time.time())
    return jwt.encode({"sub": str(visitor_id), "cid": str(conversation_id), "emb": embed_id,
                       "tid": str(tenant_id), "iat": now, "exp": now + ttl_s}, secret, algorithm="HS256")


@dataclass(frozen=True)
class Visitor:
    visitor_id: uuid.UUID
    conversation_id: uuid.UUID
    tenant_id: uuid.UUID
    session_left_s: float = 0.0  # until the session's absolute end (see check_session)


def check_session(visitor: Visitor, session, max_age_s: float) -> Visitor:
    """The token's session (one per widget conversation) must exist, be unrevoked and be
    younger than ``max_age_s``: a token, however fresh, dies with its session."""
    if session is None or session["revoked_at"] is not None:
        raise ApiError(401, "session_revoked", "this conversation's access was revoked; start a new conversation")
    left = max_age_s - session["age_s"]
    if left <= 0:
        raise ApiError(401, "session_expired", "this conversation's session has ended; start a new conversation")
    return Visitor(visitor.visitor_id, visitor.conversation_id, visitor.tenant_id, left)


def verify_visitor_token(request: web.Request, secret: str, embed_id: str,
                         conversation_id: uuid.UUID, *, grace_s: int = 0) -> Visitor:
    """Visitor tokens travel in the Authorization header, or in ``?token=`` for EventSource,
    which cannot set headers. A token only opens its own conversation."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("token", "")
    if not token:
        raise ApiError(401, "unauthorized", "a visitor token is required")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=grace_s,
                            options={"require": ["exp", "sub", "cid", "tid"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the visitor token has expired; refresh it") from None
    except jwt.PyJWTError:
        raise ApiError(401, "unauthorized", "the visitor token is not valid") from None
    if claims.get("emb") != embed_id or claims.get("cid") != str(conversation_id):
        raise ApiError(403, "forbidden", "this token does not open this conversation")
    try:
        return Visitor(uuid.UUID(claims["sub"]), conversation_id, uuid.UUID(claims["tid"]))
    except (ValueError, TypeError):
        raise ApiError(401, "unauthorized", "the visitor token is not valid") from None
