"""The trust boundaries of the deployed shape, in-process: the internal credential on every
/internal/ route, whose X-Forwarded-For the gateway believes, what refuses to start."""
from __future__ import annotations

from aiohttp import web

from common.settings import INTERNAL_KEY_HEADER, listen_problem, settings_for
from common.web import make_app
from scripts.start_app import config_problems
from services.gateway.proxies import TrustedProxies

KEY = "k" * 32


def _app(internal_api_key: str | None) -> web.Application:
    settings = settings_for("conversation")(database_url="postgresql://unused", internal_api_key=internal_api_key)
    app = make_app(settings)

    async def internal(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/internal/things", internal)
    return app


async def test_internal_routes_need_the_credential(aiohttp_client):
    client = await aiohttp_client(_app(KEY))
    for headers in ({}, {INTERNAL_KEY_HEADER: "wrong"}, {INTERNAL_KEY_HEADER: KEY[:-1]}):
        resp = await client.get("/internal/things", headers=headers)
        assert resp.status == 401
        body = await resp.json()
        assert body["error"]["code"] == "unauthorized" and body["error"]["details"] == {"header": INTERNAL_KEY_HEADER}
    resp = await client.get("/internal/things", headers={INTERNAL_KEY_HEADER: KEY})
    assert resp.status == 200 and await resp.json() == {"ok": True}
    # /health stays open for the container's health check and the gateway's
    assert (await client.get("/metrics")).status == 200


async def test_without_a_configured_key_a_loopback_service_serves_internal_routes(aiohttp_client):
    client = await aiohttp_client(_app(None))
    assert (await client.get("/internal/things")).status == 200


def test_an_internal_service_refuses_to_listen_beyond_loopback_without_the_key():
    cls = settings_for("ai")
    assert listen_problem(cls(database_url="x")) is None
    problem = listen_problem(cls(database_url="x", bind_host="0.0.0.0"))
    assert problem and "INTERNAL_API_KEY" in problem
    assert listen_problem(cls(database_url="x", bind_host="0.0.0.0", internal_api_key=KEY)) is None
    assert listen_problem(settings_for("gateway")(database_url="x", bind_host="0.0.0.0")) is None


def test_bind_host_per_program(monkeypatch):
    monkeypatch.setenv("BIND_HOST", "127.0.0.1")
    monkeypatch.setenv("GATEWAY_BIND_HOST", "0.0.0.0")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "x")
    monkeypatch.setenv("AI_DATABASE_URL", "x")
    assert settings_for("gateway")().bind_host == "0.0.0.0"
    assert settings_for("ai")().bind_host == "127.0.0.1"


class _Request:
    def __init__(self, remote: str, forwarded: str | None = None):
        self.remote = remote
        self.headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}


async def test_forwarded_for_is_believed_only_from_trusted_proxies():
    proxies = TrustedProxies("127.0.0.1,::1,172.20.0.0/16")
    # nginx (trusted) passes on the address it derived; a forged hop further left is ignored
    assert await proxies.client_ip(_Request("172.20.0.5", "6.6.6.6, 203.0.113.7")) == "203.0.113.7"
    # anyone else's header is ignored: the peer is the client
    assert await proxies.client_ip(_Request("10.9.9.9", "203.0.113.7")) == "10.9.9.9"
    # several trusted hops are walked past from the right
    assert await proxies.client_ip(_Request("127.0.0.1", "6.6.6.6, 198.51.100.4, 172.20.0.9")) == "198.51.100.4"
    # no header, or garbage in it: nothing further left is believed
    assert await proxies.client_ip(_Request("127.0.0.1")) == "127.0.0.1"
    assert await proxies.client_ip(_Request("127.0.0.1", "6.6.6.6, not-an-ip")) == "127.0.0.1"


async def test_trusted_proxies_by_host_name():
    proxies = TrustedProxies("localhost")
    assert await proxies.client_ip(_Request("127.0.0.1", "198.51.100.4")) == "198.51.100.4"
    assert await proxies.client_ip(_Request("10.1.2.3", "198.51.100.4")) == "10.1.2.3"


def _production(**env):
    base = {"AVATARCHAT_ENV": "production", "AMQP_URL": "amqp://u:p@rabbitmq/",
            **{f"{s}_DATABASE_URL": "postgresql://x" for s in
               ("GATEWAY", "CONVERSATION", "AI", "KNOWLEDGE", "AVATAR", "ANALYTICS")},
            "ADMIN_API_KEY": "a" * 32, "VISITOR_TOKEN_SECRET": "v" * 32, "SECRET_KEY": "s" * 32,
            "INTERNAL_API_KEY": KEY}
    base.update(env)
    return {k: v for k, v in base.items() if v is not None}


def test_production_refuses_missing_or_default_secrets_naming_the_variable():
    assert config_problems(_production()) == []
    assert config_problems(_production(SECRET_KEY=None)) == ["SECRET_KEY is not set (it is required)"]
    assert "SECRET_KEY" in config_problems(_production(SECRET_KEY="dev-insecure-secret-key"))[0]
    assert "ADMIN_API_KEY" in config_problems(_production(ADMIN_API_KEY="short"))[0]
    assert config_problems(_production(INTERNAL_API_KEY=""))[0].startswith("INTERNAL_API_KEY is not set")
    assert config_problems(_production(AMQP_URL=None)) == ["AMQP_URL is not set (it is required)"]
    # a container running only ai needs no gateway secrets
    only_ai = _production(AVATARCHAT_PROGRAMS="ai", ADMIN_API_KEY=None, VISITOR_TOKEN_SECRET=None)
    assert config_problems(only_ai) == []


def test_a_split_layout_needs_the_internal_credential_even_outside_production():
    assert config_problems({"AVATARCHAT_PROGRAMS": "ai,knowledge"}) == [
        "INTERNAL_API_KEY is not set (programs split across containers need it)"]
    assert config_problems({}) == []  # local runs of all six on loopback
