"""Console sign-in through the real stack (supervisord, and nginx where the browser's path
matters): invites, sessions, roles, CSRF, expiry, lockout. The cross-tenant sweep with a session
and the fuzzer's session run are in test_tenant_api.py."""
from __future__ import annotations

import itertools
import os
import secrets
import uuid

import asyncpg
import pytest

from services.gateway.auth import COOKIE

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
_ADDRESSES = itertools.count(1)
# the test databases outlive a run: each run's people have addresses of their own
RUN = secrets.token_hex(4)


def client_ip() -> dict:
    """Each test signs in from its own address (the gateway believes X-Forwarded-For from
    loopback, where nginx is), so the per-address sign-in limit of one test, or of the fuzzer,
    never spills into another."""
    n = next(_ADDRESSES)
    return {"X-Forwarded-For": f"198.51.{100 + n // 250}.{n % 250 + 1}"}


async def invite(api, owner, email: str, role: str) -> dict:
    status, body = await api.call("POST", "/api/v1/invites", headers=owner.headers, json={"email": email, "role": role})
    assert status == 201, body
    return body


async def gateway_db(sql: str, *args) -> None:
    conn = await asyncpg.connect(os.environ["GATEWAY_DATABASE_URL"])
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_an_owner_invites_an_editor_and_a_viewer_and_each_role_does_what_it_may(api, stack):
    tenant, owner = await api.owner_session(stack.admin_key, "Roles Ltd")
    assert owner.info["tenant"] == {"id": tenant["tenant"]["id"], "name": "Roles Ltd", "role": "owner"}
    editor_invite = await invite(api, owner, f"Editor@{RUN}.Roles.example", "editor")
    assert editor_invite["url"].endswith(f"/console/#/invite/{editor_invite['token']}")
    status, offer = await api.call("GET", f"/api/v1/auth/invites/{editor_invite['token']}")
    assert status == 200 and offer == {"email": f"editor@{RUN}.roles.example", "tenant_name": "Roles Ltd",
                                       "role": "editor", "expires_at": editor_invite["expires_at"],
                                       "existing_user": False}
    await api.sign_in(f"/api/v1/auth/invites/{editor_invite['token']}/accept", {"password": PASSWORD})
    viewer_invite = await invite(api, owner, f"viewer@{RUN}.roles.example", "viewer")
    await api.sign_in(f"/api/v1/auth/invites/{viewer_invite['token']}/accept", {"password": PASSWORD})
    status, pending = await api.call("GET", "/api/v1/invites", headers=owner.headers)
    assert status == 200 and pending["data"] == []  # both were used

    editor = await api.sign_in("/api/v1/auth/login", {"email": f"editor@{RUN}.roles.example", "password": PASSWORD},
                               headers=client_ip())
    viewer = await api.sign_in("/api/v1/auth/login", {"email": f"viewer@{RUN}.roles.example", "password": PASSWORD},
                               headers=client_ip())
    assert editor.info["tenant"]["role"] == "editor" and viewer.info["tenant"]["role"] == "viewer"

    bot = await api.call("POST", "/api/v1/chatbots", headers=editor.headers, json={"name": "Editor's bot"})
    assert bot[0] == 201
    chatbot_id = bot[1]["id"]
    # the viewer reads conversations and analytics, and changes nothing
    assert (await api.call("GET", f"/api/v1/chatbots/{chatbot_id}/conversations", headers=viewer.headers))[0] == 200
    assert (await api.call("GET", "/api/v1/analytics/summary", headers=viewer.headers))[0] == 200
    for method, path, body in (("POST", "/api/v1/chatbots", {"name": "x"}),
                               ("PATCH", f"/api/v1/chatbots/{chatbot_id}", {"name": "x"}),
                               ("DELETE", f"/api/v1/chatbots/{chatbot_id}", None)):
        status, refused = await api.call(method, path, headers=viewer.headers, json=body)
        assert status == 403 and refused["error"]["code"] == "insufficient_role", (method, path, refused)
    # the editor runs chatbots, but not keys, users, invites, provider keys or the tenant
    for method, path, body in (("GET", "/api/v1/api-keys", None), ("POST", "/api/v1/api-keys", {"name": "x"}),
                               ("GET", "/api/v1/users", None),
                               ("POST", "/api/v1/invites", {"email": "x@roles.example", "role": "viewer"}),
                               ("PUT", "/api/v1/provider-keys/openai", {"api_key": "sk-test-0123456789abcdef"}),
                               ("PATCH", "/api/v1/tenant", {"name": "Mine now"})):
        status, refused = await api.call(method, path, headers=editor.headers, json=body)
        assert status == 403 and refused["error"]["code"] == "insufficient_role", (method, path, refused)
    status, users = await api.call("GET", "/api/v1/users", headers=owner.headers)
    assert sorted((u["email"], u["role"]) for u in users["data"]) == [
        (f"editor@{RUN}.roles.example", "editor"), (owner.info["user"]["email"], "owner"),
        (f"viewer@{RUN}.roles.example", "viewer")]
    # the tenant's own full API key still does everything
    assert (await api.call("GET", "/api/v1/users", key=tenant["api_key"]["key"]))[0] == 200


async def test_logout_ends_the_session_on_the_server(api, stack):
    _, owner = await api.owner_session(stack.admin_key, "Logout Ltd")
    status, _, headers = await api.call_h("POST", "/api/v1/auth/logout", headers=owner.headers)
    assert status == 204 and headers["Set-Cookie"].startswith(f"{COOKIE}=") and "Max-Age=0" in headers["Set-Cookie"]
    # a copy of the old cookie (kept by an attacker, say) opens nothing any more
    for path in ("/api/v1/auth/session", "/api/v1/tenant", "/api/v1/chatbots"):
        status, body = await api.call("GET", path, headers=owner.headers)
        assert status == 401 and set(body) == {"error"}, path


async def test_a_session_ends_after_idling_and_at_its_absolute_age(api, stack):
    _, owner = await api.owner_session(stack.admin_key, "Expiry Ltd")
    assert (await api.call("GET", "/api/v1/tenant", headers=owner.headers))[0] == 200
    user_id = owner.info["user"]["id"]
    await gateway_db("UPDATE console_sessions SET last_seen_at = now() - interval '121 minutes' "
                     "WHERE user_id = $1", uuid.UUID(user_id))
    status, body = await api.call("GET", "/api/v1/tenant", headers=owner.headers)
    assert status == 401 and body["error"]["code"] == "session_expired"

    again = await api.sign_in("/api/v1/auth/login", {"email": owner.info["user"]["email"], "password":
                                                     "owner password 1"}, headers=client_ip())
    assert (await api.call("GET", "/api/v1/tenant", headers=again.headers))[0] == 200
    await gateway_db("UPDATE console_sessions SET created_at = now() - interval '721 minutes' "
                     "WHERE user_id = $1", uuid.UUID(user_id))
    status, body = await api.call("GET", "/api/v1/tenant", headers=again.headers)
    assert status == 401 and body["error"]["code"] == "session_expired"


async def test_state_changing_requests_with_the_cookie_need_the_csrf_token_and_our_origin(api, stack):
    _, owner = await api.owner_session(stack.admin_key, "Csrf Ltd")
    own_origin = os.environ["PUBLIC_BASE_URL"]
    forged = {**owner.cookie_only, "X-CSRF-Token": "guessed"}
    for headers in (owner.cookie_only, forged, {**owner.headers, "Origin": "https://evil.example"},
                    {**owner.headers, "Origin": "null"}):
        status, body = await api.call("POST", "/api/v1/chatbots", headers=headers, json={"name": "x"})
        assert status == 403 and body["error"]["code"] == "csrf_failed", headers
    # a cross-site HTML form: urlencoded, no header, the browser's cookie and the attacker's Origin
    status, body = await api.call("POST", "/api/v1/chatbots", data="name=x", headers={
        **owner.cookie_only, "Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    for path in ("/api/v1/auth/logout", "/api/v1/auth/switch-tenant", "/api/v1/auth/password"):
        status, body = await api.call("POST", path, headers=owner.cookie_only, json={})
        assert status == 403 and body["error"]["code"] == "csrf_failed", path
    status, listed = await api.call("GET", "/api/v1/chatbots", headers=owner.headers)
    assert status == 200 and listed["data"] == []  # nothing was created
    status, _ = await api.call("POST", "/api/v1/chatbots", headers={**owner.headers, "Origin": own_origin},
                               json={"name": "Made in the console"})
    assert status == 201
    # reading needs no CSRF token: a cross-site page cannot read the answer anyway
    assert (await api.call("GET", "/api/v1/auth/session", headers=owner.cookie_only))[0] == 200


async def test_wrong_password_and_unknown_email_get_the_same_answer_until_the_same_lockout(api, stack):
    _, owner = await api.owner_session(stack.admin_key, "Lockout Ltd")
    known, unknown = owner.info["user"]["email"], f"nobody-{secrets.token_hex(4)}@lockout-ltd.example"
    answers = {}
    for email in (known, unknown):
        where = client_ip()
        seen = []
        for _ in range(6):  # five failures are allowed per email in 15 minutes
            status, body, headers = await api.call_h("POST", "/api/v1/auth/login", headers=dict(where),
                                                     json={"email": email, "password": "wrong password"})
            seen.append((status, body))
        assert int(headers["Retry-After"]) >= 1
        answers[email] = seen
    assert answers[known] == answers[unknown]
    assert [s for s, _ in answers[known]] == [401] * 5 + [429]
    assert answers[known][0][1]["error"] == {"code": "invalid_credentials",
                                              "message": "the email or password is not right", "details": None}
    assert answers[known][5][1]["error"]["code"] == "too_many_attempts"
    # the lockout holds from another address too, and for the right password
    status, _ = await api.call("POST", "/api/v1/auth/login", headers=client_ip(),
                               json={"email": known, "password": "owner password 1"})
    assert status == 429


async def test_used_or_expired_invites_and_reset_links_are_gone(api, stack):
    _, owner = await api.owner_session(stack.admin_key, "Links Ltd")
    used = await invite(api, owner, f"used@{RUN}.links.example", "viewer")
    member = await api.sign_in(f"/api/v1/auth/invites/{used['token']}/accept", {"password": PASSWORD})
    status, body = await api.call("POST", f"/api/v1/auth/invites/{used['token']}/accept", json={"password": PASSWORD})
    assert status == 410 and body["error"]["code"] == "invite_used"
    expired = await invite(api, owner, f"late@{RUN}.links.example", "viewer")
    await gateway_db("UPDATE invites SET expires_at = now() - interval '1 second' WHERE id = $1",
                     uuid.UUID(expired["id"]))
    status, body = await api.call("GET", f"/api/v1/auth/invites/{expired['token']}")
    assert status == 410 and body["error"]["code"] == "invite_expired"
    status, body = await api.call("GET", "/api/v1/auth/invites/" + "x" * 43)
    assert status == 404 and body["error"]["code"] == "not_found"

    status, link = await api.call("POST", f"/api/v1/users/{member.info['user']['id']}/reset-link",
                                  headers=owner.headers)
    assert status == 201
    status, _ = await api.call("POST", f"/api/v1/auth/resets/{link['token']}", json={"password": "my new password"})
    assert status == 204
    assert (await api.call("GET", "/api/v1/tenant", headers=member.headers))[0] == 401  # sessions ended
    status, body = await api.call("GET", f"/api/v1/auth/resets/{link['token']}")
    assert status == 410 and body["error"]["code"] == "reset_used"
    status, link = await api.call("POST", f"/api/v1/users/{member.info['user']['id']}/reset-link",
                                  headers=owner.headers)
    await gateway_db("UPDATE password_resets SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
    status, body = await api.call("POST", f"/api/v1/auth/resets/{link['token']}", json={"password": "yet another one"})
    assert status == 410 and body["error"]["code"] == "reset_expired"
    await api.sign_in("/api/v1/auth/login", {"email": f"used@{RUN}.links.example", "password": "my new password"},
                      headers=client_ip())


async def test_a_session_of_tenant_a_reads_nothing_of_tenant_b_and_cannot_switch_to_it(api, stack):
    _, a = await api.owner_session(stack.admin_key, "Tenant A")
    b_tenant, b = await api.owner_session(stack.admin_key, "Tenant B")
    status, b_bot = await api.call("POST", "/api/v1/chatbots", headers=b.headers, json={"name": "B's bot"})
    assert status == 201
    assert (await api.call("GET", f"/api/v1/chatbots/{b_bot['id']}", headers=a.headers))[0] == 404
    status, listed = await api.call("GET", "/api/v1/chatbots", headers=a.headers)
    assert listed["data"] == []
    status, body = await api.call("POST", "/api/v1/auth/switch-tenant", headers=a.headers,
                                  json={"tenant_id": b_tenant["tenant"]["id"]})
    assert status == 403 and body["error"]["code"] == "not_a_member"


async def test_a_user_of_two_tenants_switches_between_them(api, stack):
    first, owner = await api.owner_session(stack.admin_key, "First Ltd")
    second = await api.tenant(stack.admin_key, "Second Ltd", owner_email=owner.info["user"]["email"])
    status, offer = await api.call("GET", f"/api/v1/auth/invites/{second['owner_invite']['token']}")
    assert offer["existing_user"] is True
    status, body = await api.call("POST", f"/api/v1/auth/invites/{second['owner_invite']['token']}/accept",
                                  json={"password": "not my password"}, headers=client_ip())
    assert status == 401 and body["error"]["code"] == "invalid_credentials"
    joined = await api.sign_in(f"/api/v1/auth/invites/{second['owner_invite']['token']}/accept",
                               {"password": "owner password 1"})
    assert {t["name"] for t in joined.info["tenants"]} == {"First Ltd", "Second Ltd"}
    status, switched = await api.call("POST", "/api/v1/auth/switch-tenant", headers=owner.headers,
                                      json={"tenant_id": second["tenant"]["id"]})
    assert status == 200 and switched["tenant"]["name"] == "Second Ltd"
    status, me = await api.call("GET", "/api/v1/tenant", headers=owner.headers)
    assert me["id"] == second["tenant"]["id"]
    # a password change keeps this session and ends the others
    status, _ = await api.call("POST", "/api/v1/auth/password", headers=owner.headers,
                               json={"current_password": "owner password 1", "new_password": "owner password 2"})
    assert status == 204
    assert (await api.call("GET", "/api/v1/tenant", headers=owner.headers))[0] == 200
    assert (await api.call("GET", "/api/v1/tenant", headers=joined.headers))[0] == 401
    assert first["tenant"]["id"] in {t["id"] for t in switched["tenants"]}


async def test_the_admin_signs_in_once_and_uses_a_session_for_the_admin_routes(api, stack):
    admin = await api.sign_in("/api/v1/auth/admin-login", {"admin_key": stack.admin_key}, headers=client_ip())
    assert admin.info["admin"] is True and admin.info["user"] is None
    status, created = await api.call("POST", "/api/v1/admin/tenants", headers=admin.headers,
                                     json={"name": "Made by the admin", "owner_email": "first@admin-made.example"})
    assert status == 201 and created["owner_invite"]["url"].endswith(created["owner_invite"]["token"])
    status, body = await api.call("PATCH", f"/api/v1/admin/tenants/{created['tenant']['id']}",
                                  headers=admin.cookie_only, json={"limits": {"max_chatbots": 1}})
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, body = await api.call("PATCH", f"/api/v1/admin/tenants/{created['tenant']['id']}",
                                  headers=admin.headers, json={"limits": {"max_chatbots": 1}})
    assert status == 200 and body["limits"]["max_chatbots"] == 1
    # an admin session is not a tenant's
    assert (await api.call("GET", "/api/v1/chatbots", headers=admin.headers))[0] == 401


async def test_sign_in_works_through_nginx_like_the_console(api, stack, site):
    """The console's path: same origin through nginx, the cookie and the CSRF header pass."""
    _, owner = await api.owner_session(stack.admin_key, "Nginx Ltd")
    origin = {"Origin": os.environ["PUBLIC_BASE_URL"]}
    session = await api.sign_in("/api/v1/auth/login", {"email": owner.info["user"]["email"],
                                                       "password": "owner password 1"}, headers=origin, base=site)
    status, body = await api.call("POST", "/api/v1/chatbots", base=site, json={"name": "Through nginx"},
                                  headers={**session.headers, **origin})
    assert status == 201, body
    status, body = await api.call("POST", "/api/v1/chatbots", base=site, json={"name": "x"},
                                  headers={**session.cookie_only, **origin})
    assert status == 403 and body["error"]["code"] == "csrf_failed"
