"""Rate limits shared by every gateway process: GCRA with its state in the gateway's database.

Each limited key (an API key, a visitor, an IP) has one row holding its theoretical arrival time
(TAT). One atomic upsert admits or refuses a request, so the limit holds however many gateways
run, and a burst of up to ``limit`` requests is allowed per ``period``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from common.web import ApiError
from services.gateway import repository

STATE = web.RequestKey("ratelimit_state", object)
# key -> (monotonic times it is refused until and its window resets at): a flood from one key
# is answered from memory until then, instead of costing a database round trip per request
REFUSED = web.AppKey("ratelimit_refused", dict)
_REFUSED_KEPT = 10_000


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    period_s: float

    @property
    def interval(self) -> float:
        return self.period_s / self.limit


@dataclass
class Decision:
    allowed: bool
    limit: Limit
    remaining: int
    reset_s: float
    retry_after_s: float

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_s))),
            "RateLimit-Policy": f"{self.limit.limit};w={int(self.limit.period_s)};name=\"{self.limit.name}\"",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


async def hit(pool: asyncpg.Pool, key: str, limit: Limit) -> Decision:
    t, tau = limit.interval, limit.period_s
    ahead = await repository.admit(pool, f"{limit.name}:{key}", t, tau)
    if ahead is not None:
        return Decision(True, limit, max(0, int((tau - ahead) // t)), ahead, 0.0)
    ahead = await repository.seconds_ahead(pool, f"{limit.name}:{key}")
    return Decision(False, limit, 0, ahead, ahead - tau + t)


async def enforce(request: web.Request, pool: asyncpg.Pool, key: str, limit: Limit, *,
                  refusal: tuple[str, str] | None = None) -> None:
    """Admit the request or raise a 429 (``refusal``: its code and message instead of the
    generic ones); remember the tightest decision for the response headers."""
    refused = request.app.get(REFUSED)
    remembered = refused.get(f"{limit.name}:{key}") if refused is not None else None
    now = time.monotonic()
    if remembered is not None and remembered[0] > now:
        decision = Decision(False, limit, 0, remembered[1] - now, remembered[0] - now)
    else:
        decision = await hit(pool, key, limit)
        if not decision.allowed and refused is not None:
            if len(refused) >= _REFUSED_KEPT:
                refused.clear()
            refused[f"{limit.name}:{key}"] = (now + decision.retry_after_s, now + decision.reset_s)
    previous = request.get(STATE)
    if previous is None or decision.remaining < previous.remaining or not decision.allowed:
        request[STATE] = decision
    if not decision.allowed:
        code, message = refusal or ("rate_limited", f"too many requests ({limit.name}); retry later")
        raise ApiError(429, code, message, {"limit": limit.limit, "period_seconds": limit.period_s},
                       headers=decision.headers())


async def give_back(pool: asyncpg.Pool, key: str, limit: Limit) -> None:
    """Return the request ``enforce`` admitted to the key's budget."""
    await repository.give_back(pool, f"{limit.name}:{key}", limit.interval)


@web.middleware
async def headers_middleware(request: web.Request, handler):
    response = await handler(request)
    decision = request.get(STATE)
    if decision is not None and not response.prepared:
        response.headers.update(decision.headers())
    return response


async def purge(pool: asyncpg.Pool) -> None:
    await repository.purge_rate_limits(pool)


async def forget(conn, key: str) -> None:
    """Every limit's cell of one key (an erased visitor's, say)."""
    await repository.forget_rate_limits(conn, key)
