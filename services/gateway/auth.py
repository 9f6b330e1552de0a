"""API keys (``ak_live_<id>_<secret>``, stored as a hash) and signed visitor tokens."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt
from aiohttp import web

from common.web import POOL, ApiError
from services.gateway import repository

KEY_PREFIX = "ak_live_"
ADMIN_KEY = web.AppKey("admin_api_key", str)

# what each key scope may do: "read" keys only read, "chat" keys only chat
SCOPES = {"full": {"read", "write", "chat"}, "read": {"read"}, "chat": {"chat"}}


def scope_allows(scope: str, need: str) -> bool:
    return need in SCOPES.get(scope, set())


@dataclass(frozen=True)
class Principal:
    tenant_id: uuid.UUID
    key_id: str
    scope: str


def new_api_key() -> tuple[str, str, bytes]:
    """(key id, the full key shown once, the hash we keep)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    # the secret is 256 random bits, so a fast hash is enough (no dictionary to attack)
    return hashlib.sha256(secret.encode()).digest()


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise ApiError(401, "unauthorized", "send your API key as 'Authorization: Bearer ak_live_...'")
    return header[7:].strip()


def require_admin(request: web.Request, admin_key: str) -> None:
    if not hmac.compare_digest(_bearer(request).encode(), admin_key.encode()):
        raise ApiError(401, "unauthorized", "this route needs the platform admin key")


async def authenticate(request: web.Request) -> Principal:
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
    return Principal(row["tenant_id"], key_id, row["scope"])


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
