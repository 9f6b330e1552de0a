"""Console sign-in on a gateway app in-process (real Postgres and RabbitMQ, a throwaway database
and vhost): sessions, their expiry, lockout, invites, reset links, roles and what deleting a
tenant takes with it. The same flows through the real stack are in tests/e2e/test_console_auth.py."""
from __future__ import annotations

import pytest

from common.bus import Bus
from common.db import create_pool
from services.gateway import auth
from services.gateway.app import MIGRATIONS, create_app
from services.gateway.settings import Settings

ADMIN = "ak_admin_console_tests_0123456789"
PASSWORD = "correct horse battery"


@pytest.fixture
async def gateway(aiohttp_client, scratch_db, scratch_vhost):
    settings = Settings(GATEWAY_DATABASE_URL=scratch_db, AMQP_URL=scratch_vhost, ADMIN_API_KEY=ADMIN,
                        VISITOR_TOKEN_SECRET="x" * 32, LOGIN_FAILURES_PER_EMAIL=3, LOGIN_FAILURES_PER_IP=50,
                        PUBLIC_BASE_URL="http://console.test")
    pool = await create_pool(scratch_db, migrations=MIGRATIONS)
    bus = Bus(scratch_vhost, "gateway")
    await bus.connect()
    client = await aiohttp_client(create_app(settings, pool=pool, bus=bus))
    yield client, pool
    await client.close()
    await bus.close()
    await pool.close()


def session_of(resp, info: dict) -> dict:
    """The headers a browser would send with this session on a state-changing request."""
    return {"Cookie": f"{auth.COOKIE}={resp.cookies[auth.COOKIE].value}", "X-CSRF-Token": info["csrf_token"]}


async def tenant_with_owner(client, email: str, name: str = "Shop") -> tuple[dict, dict]:
    resp = await client.post("/api/v1/admin/tenants", json={"name": name, "owner_email": email},
                             headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status == 201
    created = await resp.json()
    assert created["owner_invite"]["url"] == f"http://console.test/console/#/invite/{created['owner_invite']['token']}"
    resp = await client.post(f"/api/v1/auth/invites/{created['owner_invite']['token']}/accept",
                             json={"password": PASSWORD})
    assert resp.status == 200, await resp.text()
    info = await resp.json()
    return created, session_of(resp, info)


async def test_an_invited_owner_signs_in_and_the_cookie_is_locked_down(gateway):
    client, _ = gateway
    resp = await client.post("/api/v1/admin/tenants", json={"name": "Shop", "owner_email": "Ann@Shop.Example"},
                             headers={"Authorization": f"Bearer {ADMIN}"})
    token = (await resp.json())["owner_invite"]["token"]
    resp = await client.get(f"/api/v1/auth/invites/{token}")
    offer = await resp.json()
    assert offer["email"] == "ann@shop.example" and offer["role"] == "owner" and offer["existing_user"] is False
    resp = await client.post(f"/api/v1/auth/invites/{token}/accept", json={"password": "short"})
    assert resp.status == 422
    resp = await client.post(f"/api/v1/auth/invites/{token}/accept", json={"password": PASSWORD})
    info = await resp.json()
    assert info["user"]["email"] == "ann@shop.example" and info["tenant"]["role"] == "owner"
    assert info["admin"] is False and [t["name"] for t in info["tenants"]] == ["Shop"]
    cookie = resp.cookies[auth.COOKIE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["domain"]

    resp = await client.post(f"/api/v1/auth/invites/{token}/accept", json={"password": PASSWORD})
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "invite_used"
    # the address signs in whatever its case
    resp = await client.post("/api/v1/auth/login", json={"email": "ANN@shop.example", "password": PASSWORD})
    assert resp.status == 200
    resp = await client.get("/api/v1/tenant", headers=session_of(resp, await resp.json()))
    assert resp.status == 200 and (await resp.json())["name"] == "Shop"


async def test_wrong_password_and_unknown_email_look_the_same_up_to_the_lockout(gateway):
    client, _ = gateway
    await tenant_with_owner(client, "bo@shop.example")
    answers = {}
    for email in ("bo@shop.example", "nobody@shop.example"):
        seen = []
        for _ in range(4):  # three failures are allowed per email, the fourth is refused
            resp = await client.post("/api/v1/auth/login", json={"email": email, "password": "not the password"})
            seen.append((resp.status, (await resp.json())["error"]))
        answers[email] = seen
        assert [s for s, _ in seen] == [401, 401, 401, 429]
        assert int(resp.headers["Retry-After"]) >= 1
    assert answers["bo@shop.example"] == answers["nobody@shop.example"]
    assert answers["bo@shop.example"][0][1]["code"] == "invalid_credentials"
    assert answers["bo@shop.example"][3][1]["code"] == "too_many_attempts"
    # locked out: even the right password waits
    resp = await client.post("/api/v1/auth/login", json={"email": "bo@shop.example", "password": PASSWORD})
    assert resp.status == 429


async def test_successful_sign_ins_do_not_count_towards_the_lockout(gateway):
    client, _ = gateway
    await tenant_with_owner(client, "cy@shop.example")
    for _ in range(5):
        resp = await client.post("/api/v1/auth/login", json={"email": "cy@shop.example", "password": PASSWORD})
        assert resp.status == 200


async def test_sessions_end_when_idle_too_long_or_too_old_and_at_logout(gateway):
    client, pool = gateway
    _, owner = await tenant_with_owner(client, "di@shop.example")
    assert (await client.get("/api/v1/auth/session", headers=owner)).status == 200
    # move the clock through the row instead of waiting two hours
    await pool.execute("UPDATE console_sessions SET last_seen_at = now() - interval '2 hours 1 minute'")
    resp = await client.get("/api/v1/tenant", headers=owner)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "session_expired"

    resp = await client.post("/api/v1/auth/login", json={"email": "di@shop.example", "password": PASSWORD})
    fresh = session_of(resp, await resp.json())
    await pool.execute("UPDATE console_sessions SET created_at = now() - interval '12 hours 1 minute' "
                       "WHERE revoked_at IS NULL AND last_seen_at > now() - interval '1 minute'")
    assert (await client.get("/api/v1/tenant", headers=fresh)).status == 401

    resp = await client.post("/api/v1/auth/login", json={"email": "di@shop.example", "password": PASSWORD})
    third = session_of(resp, await resp.json())
    resp = await client.post("/api/v1/auth/logout", headers=third)
    assert resp.status == 204 and resp.cookies[auth.COOKIE].value == ""
    assert (await client.get("/api/v1/tenant", headers=third)).status == 401


async def test_last_seen_moves_at_most_once_a_minute(gateway):
    client, pool = gateway
    _, owner = await tenant_with_owner(client, "ed@shop.example")
    await pool.execute("UPDATE console_sessions SET last_seen_at = now() - interval '30 seconds'")
    before = await pool.fetchval("SELECT last_seen_at FROM console_sessions")
    await client.get("/api/v1/tenant", headers=owner)
    assert await pool.fetchval("SELECT last_seen_at FROM console_sessions") == before
    await pool.execute("UPDATE console_sessions SET last_seen_at = now() - interval '90 seconds'")
    await client.get("/api/v1/tenant", headers=owner)
    assert await pool.fetchval("SELECT now() - last_seen_at < interval '5 seconds' FROM console_sessions")


async def test_roles_map_onto_needs_and_a_tenant_keeps_an_owner(gateway):
    client, _ = gateway
    _, owner = await tenant_with_owner(client, "fa@shop.example")
    members = {}
    for role in ("editor", "viewer"):
        resp = await client.post("/api/v1/invites", json={"email": f"{role}@shop.example", "role": role},
                                 headers=owner)
        assert resp.status == 201
        resp = await client.post(f"/api/v1/auth/invites/{(await resp.json())['token']}/accept",
                                 json={"password": PASSWORD})
        info = await resp.json()
        members[role] = (info["user"]["id"], session_of(resp, info))
    editor, viewer = members["editor"][1], members["viewer"][1]

    assert (await client.post("/api/v1/chatbots", json={"name": "Bot"}, headers=editor)).status == 201
    resp = await client.post("/api/v1/chatbots", json={"name": "Bot"}, headers=viewer)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "insufficient_role"
    assert (await client.get("/api/v1/chatbots", headers=viewer)).status == 200
    for method, path in (("GET", "/api/v1/api-keys"), ("GET", "/api/v1/users"), ("POST", "/api/v1/invites")):
        resp = await client.request(method, path, headers=editor, json={"email": "x@y.example", "role": "viewer"})
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "insufficient_role", path

    # a role change counts from the next request
    resp = await client.patch(f"/api/v1/users/{members['viewer'][0]}", json={"role": "editor"}, headers=owner)
    assert resp.status == 200 and (await resp.json())["role"] == "editor"
    assert (await client.post("/api/v1/chatbots", json={"name": "Bot 2"}, headers=viewer)).status == 201

    resp = await client.get("/api/v1/users", headers=owner)
    users = (await resp.json())["data"]
    owner_id = next(u["id"] for u in users if u["role"] == "owner")
    for method, body in (("PATCH", {"role": "editor"}), ("DELETE", None)):
        resp = await client.request(method, f"/api/v1/users/{owner_id}", json=body, headers=owner)
        assert resp.status == 409 and (await resp.json())["error"]["code"] == "last_owner"
    # removing a member ends their sessions in this tenant at once
    resp = await client.delete(f"/api/v1/users/{members['editor'][0]}", headers=owner)
    assert resp.status == 204
    assert (await client.get("/api/v1/chatbots", headers=editor)).status == 401


async def test_reset_links_are_single_use_expire_and_end_every_session(gateway):
    client, pool = gateway
    _, owner = await tenant_with_owner(client, "gi@shop.example")
    resp = await client.post("/api/v1/invites", json={"email": "ha@shop.example", "role": "editor"}, headers=owner)
    resp = await client.post(f"/api/v1/auth/invites/{(await resp.json())['token']}/accept",
                             json={"password": PASSWORD})
    info = await resp.json()
    user_id, editor = info["user"]["id"], session_of(resp, info)

    resp = await client.post(f"/api/v1/users/{user_id}/reset-link", headers=owner)
    assert resp.status == 201
    link = await resp.json()
    assert link["url"].endswith(f"/console/#/reset/{link['token']}")
    assert (await (await client.get(f"/api/v1/auth/resets/{link['token']}")).json()) == {"email": "ha@shop.example"}
    resp = await client.post(f"/api/v1/auth/resets/{link['token']}", json={"password": "a brand new secret"})
    assert resp.status == 204
    assert (await client.get("/api/v1/chatbots", headers=editor)).status == 401
    resp = await client.post(f"/api/v1/auth/resets/{link['token']}", json={"password": "another new secret"})
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "reset_used"
    resp = await client.post("/api/v1/auth/login", json={"email": "ha@shop.example", "password": "a brand new secret"})
    assert resp.status == 200

    resp = await client.post(f"/api/v1/users/{user_id}/reset-link", headers=owner)
    token = (await resp.json())["token"]
    await pool.execute("UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
    resp = await client.get(f"/api/v1/auth/resets/{token}")
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "reset_expired"

    # a user of two tenants: one tenant's owner cannot take over their password
    _, other_owner = await tenant_with_owner(client, "ix@other.example", name="Other")
    resp = await client.post("/api/v1/invites", json={"email": "ha@shop.example", "role": "viewer"},
                             headers=other_owner)
    invite = await resp.json()
    await pool.execute("UPDATE invites SET expires_at = now() - interval '1 second' WHERE id = $1",
                       __import__("uuid").UUID(invite["id"]))
    resp = await client.post(f"/api/v1/auth/invites/{invite['token']}/accept", json={"password": "a brand new secret"})
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "invite_expired"
    resp = await client.post("/api/v1/invites", json={"email": "ha@shop.example", "role": "viewer"},
                             headers=other_owner)
    resp = await client.post(f"/api/v1/auth/invites/{(await resp.json())['token']}/accept",
                             json={"password": "not their password"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await client.post("/api/v1/invites", json={"email": "ha@shop.example", "role": "viewer"},
                             headers=other_owner)
    resp = await client.post(f"/api/v1/auth/invites/{(await resp.json())['token']}/accept",
                             json={"password": "a brand new secret"})
    assert resp.status == 200 and len((await resp.json())["tenants"]) == 2
    resp = await client.post(f"/api/v1/users/{user_id}/reset-link", headers=owner)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "user_in_other_tenants"


async def test_deleting_a_tenant_takes_its_users_sessions_and_invites(gateway):
    client, pool = gateway
    created, owner = await tenant_with_owner(client, "jo@shop.example")
    await client.post("/api/v1/invites", json={"email": "ka@shop.example", "role": "viewer"}, headers=owner)
    resp = await client.delete(f"/api/v1/admin/tenants/{created['tenant']['id']}",
                               headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status == 204
    for table in ("users", "memberships", "console_sessions", "invites", "password_resets"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert (await client.get("/api/v1/auth/session", headers=owner)).status == 401


async def test_the_admin_key_opens_an_admin_session_for_the_admin_routes_only(gateway):
    client, _ = gateway
    resp = await client.post("/api/v1/auth/admin-login", json={"admin_key": "not it"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_credentials"
    resp = await client.post("/api/v1/auth/admin-login", json={"admin_key": ADMIN})
    info = await resp.json()
    assert info["admin"] is True and info["user"] is None and info["tenant"] is None
    admin = session_of(resp, info)
    assert (await client.get("/api/v1/admin/tenants", headers=admin)).status == 200
    resp = await client.post("/api/v1/admin/tenants", json={"name": "Via session"}, headers=admin)
    assert resp.status == 201
    resp = await client.post("/api/v1/admin/tenants", json={"name": "No CSRF"},
                             headers={"Cookie": admin["Cookie"]})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    assert (await client.get("/api/v1/chatbots", headers=admin)).status == 401
    _, owner = await tenant_with_owner(client, "la@shop.example")
    assert (await client.get("/api/v1/admin/tenants", headers=owner)).status == 401
