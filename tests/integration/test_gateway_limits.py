"""Per-key and per-IP rate limits, with small limits, on a gateway app in-process (real
Postgres and RabbitMQ, a throwaway database and vhost)."""
from __future__ import annotations

import pytest

from common.bus import Bus
from common.db import create_pool
from services.gateway import ratelimit
from services.gateway.app import MIGRATIONS, create_app
from services.gateway.settings import Settings

ADMIN = "ak_admin_test_only_0123456789"


@pytest.fixture
async def gateway(aiohttp_client, scratch_db, scratch_vhost):
    settings = Settings(GATEWAY_DATABASE_URL=scratch_db, AMQP_URL=scratch_vhost, ADMIN_API_KEY=ADMIN,
                        VISITOR_TOKEN_SECRET="x" * 32, RATE_LIMIT_KEY_PER_MINUTE=5, RATE_LIMIT_IP_PER_MINUTE=3)
    pool = await create_pool(scratch_db, migrations=MIGRATIONS)
    bus = Bus(scratch_vhost, "gateway")
    await bus.connect()
    client = await aiohttp_client(create_app(settings, pool=pool, bus=bus))
    yield client, pool
    await client.close()  # the app's cleanup (its outbox relay) still needs the pool and the bus
    await bus.close()
    await pool.close()


async def _tenant_key(client) -> str:
    resp = await client.post("/api/v1/admin/tenants", json={"name": "t"}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status == 201
    return (await resp.json())["api_key"]["key"]


async def test_each_api_key_has_its_own_budget_and_429_says_when_to_retry(gateway):
    client, _ = gateway
    first, second = await _tenant_key(client), await _tenant_key(client)
    remaining = []
    for _ in range(5):
        resp = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {first}"})
        assert resp.status == 200
        remaining.append(int(resp.headers["RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    resp = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {first}"})
    body = await resp.json()
    assert resp.status == 429 and body["error"]["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 12 and resp.headers["RateLimit-Limit"] == "5"
    # another key of another tenant is not affected
    resp = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {second}"})
    assert resp.status == 200


async def test_anonymous_widget_calls_are_limited_per_ip(gateway):
    client, _ = gateway
    statuses = [(await client.get("/api/widget/v1/no-such-embed/config")).status for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]


async def test_the_limit_refills_over_time(gateway):
    client, pool = gateway
    key = await _tenant_key(client)
    for _ in range(5):
        await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})
    assert (await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})).status == 429
    # move the clock instead of sleeping: age this key's state by one emission interval (12 s),
    # and forget the refusal the process remembers until its Retry-After
    await pool.execute("UPDATE rate_limits SET tat = tat - interval '12 seconds' WHERE key LIKE 'api_key:%'")
    client.app[ratelimit.REFUSED].clear()
    resp = await client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 200 and resp.headers["RateLimit-Remaining"] == "0"
