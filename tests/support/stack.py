"""The real supervisord.conf, started on the test ports with the test databases and vhost, and a
client for it. Used by the end-to-end, fault and hostile-input suites (fixtures registered once,
in tests/conftest.py)."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from scripts import frontend
from services.gateway.auth import COOKIE
from scripts.start_app import supervisor_env
from tests.support.infra import ROOT, require_env
from tests.support.sse import SseEvent, SseParser  # noqa: F401 - SseEvent is part of this module's API

BIN = Path(sys.executable).parent
# Names the hostile tests aim the crawler and providers at (common.netguard honours .test
# names only): one resolves to loopback outside the allowed address, one to cloud metadata,
# and the rebinding ones answer an allowed or public address first, then loopback.
TEST_HOSTS = {
    "shop.hostile.test": ["127.0.0.1"],
    "inside.hostile.test": ["127.0.0.2"],
    "metadata.hostile.test": ["169.254.169.254"],
    "rebind-provider.hostile.test": [["93.184.216.34"], ["127.0.0.2"]],
    "rebind-crawl.hostile.test": [["127.0.0.1"], ["127.0.0.2"]],
}


@dataclass
class Stack:
    env: dict
    log_dir: Path
    gateway: str
    admin_key: str

    def ctl(self, *args: str) -> str:
        proc = subprocess.run([str(BIN / "supervisorctl"), "-c", str(ROOT / "supervisord.conf"), *args],
                              env=self.env, capture_output=True, text=True)
        return proc.stdout + proc.stderr

    def wait_healthy(self, seconds: float = 60) -> dict:
        """Until supervisord calls every program RUNNING and the gateway's /health is green."""
        deadline = time.monotonic() + seconds
        last = None
        while time.monotonic() < deadline:
            try:
                status = self.ctl("status")
                if status.count("RUNNING") < 6:
                    raise RuntimeError(status)
                with urllib.request.urlopen(self.gateway + "/health", timeout=3) as resp:
                    return json.load(resp)
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
                time.sleep(0.3)
        raise AssertionError(f"stack not healthy: {last}\n{self.ctl('status')}")

    def logs(self, program: str) -> str:
        path = self.log_dir / f"{program}.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    require_env("GATEWAY_DATABASE_URL")
    run_dir = tmp_path_factory.mktemp("supervisor")
    log_dir = tmp_path_factory.mktemp("logs")
    env = supervisor_env({**os.environ, "LOG_DIR": str(log_dir), "SUPERVISOR_RUN_DIR": str(run_dir),
                          "SSE_PING_SECONDS": "1", "SHUTDOWN_TIMEOUT": "10",
                          # every internal call in the real layout carries the credential
                          "INTERNAL_API_KEY": secrets.token_urlsafe(24),
                          # the key and IP limits are tested in-process with small numbers (and in
                          # tests/hostile with their own gateway); here they would only throttle
                          # the fuzzer. Visitors keep the real limit.
                          "RATE_LIMIT_KEY_PER_MINUTE": "1000000", "RATE_LIMIT_IP_PER_MINUTE": "1000000",
                          "RATE_LIMIT_CONVERSATIONS_PER_IP_PER_HOUR": "1000000",
                          "RATE_LIMIT_MESSAGES_PER_IP_PER_HOUR": "1000000",
                          # the crawler may reach the tests' site on 127.0.0.1, and nothing else inside
                          "KNOWLEDGE_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
                          "NETGUARD_TEST_HOSTS": json.dumps(TEST_HOSTS)})
    subprocess.run([str(BIN / "supervisord"), "-c", str(ROOT / "supervisord.conf")], env=env, check=True)
    s = Stack(env=env, log_dir=log_dir, gateway=f"http://127.0.0.1:{os.environ['GATEWAY_PORT']}",
              admin_key=os.environ["ADMIN_API_KEY"])
    try:
        s.wait_healthy(240)  # six interpreters importing at once take minutes on a busy machine
        yield s
    finally:
        s.ctl("shutdown")
        deadline = time.monotonic() + 40
        while (run_dir / "supervisord.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        artifacts = ROOT / "test-artifacts" / "logs"
        artifacts.mkdir(parents=True, exist_ok=True)
        for log in log_dir.glob("*.log"):
            (artifacts / log.name).write_text(log.read_text())


@dataclass
class SseStream:
    """A minimal EventSource: parses the wire format as a browser would."""
    response: aiohttp.ClientResponse
    comments: list[str] = field(default_factory=list)

    async def next(self, timeout: float = 15) -> SseEvent | None:
        parser = SseParser(self.comments.append)

        async def read() -> SseEvent | None:
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    return None
                event = parser.feed(raw)
                if event is not None:
                    return event
        return await asyncio.wait_for(read(), timeout)

    async def until(self, event: str, timeout: float = 20) -> list[SseEvent]:
        seen: list[SseEvent] = []
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.next(max(0.1, deadline - time.monotonic()))
            if ev is None:
                raise AssertionError(f"stream ended before {event}: {seen}")
            seen.append(ev)
            if ev.event == event:
                return seen


@dataclass
class ConsoleSession:
    """A signed-in console user (or the admin), as a browser holds it: the cookie, and the
    SessionInfo whose csrf_token goes with every state-changing request."""
    token: str
    info: dict

    @property
    def headers(self) -> dict:
        return {"Cookie": f"{COOKIE}={self.token}", "X-CSRF-Token": self.info["csrf_token"]}

    @property
    def cookie_only(self) -> dict:
        return {"Cookie": f"{COOKIE}={self.token}"}


class Api:
    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http = http
        self.base = base

    async def call(self, method: str, path: str, *, key: str | None = None, base: str | None = None,
                   **kwargs) -> tuple[int, dict]:
        status, body, _ = await self.call_h(method, path, key=key, base=base, **kwargs)
        return status, body

    async def call_h(self, method: str, path: str, *, key: str | None = None, base: str | None = None,
                     **kwargs) -> tuple[int, dict, dict]:
        """Like call, and the response headers too."""
        headers = kwargs.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        async with self.http.request(method, (base or self.base) + path, headers=headers, **kwargs) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, body, dict(resp.headers)

    async def tenant(self, admin_key: str, name: str = "Acme", **fields) -> dict:
        status, body = await self.call("POST", "/api/v1/admin/tenants", key=admin_key, json={"name": name, **fields})
        assert status == 201, body
        return body

    async def sign_in(self, path: str, body: dict, *, headers: dict | None = None,
                      base: str | None = None) -> ConsoleSession:
        """A console sign-in (login, admin-login, an invite's accept) that must succeed."""
        async with self.http.post((base or self.base) + path, json=body, headers=headers or {}) as resp:
            info = await resp.json()
            assert resp.status == 200, info
            return ConsoleSession(resp.cookies[COOKIE].value, info)

    async def owner_session(self, admin_key: str, name: str = "Acme", *,
                            password: str = "owner password 1") -> tuple[dict, ConsoleSession]:
        """A tenant created with its first owner, who accepted the invite and is signed in."""
        email = f"owner-{secrets.token_hex(4)}@{name.lower().replace(' ', '-').replace(chr(39), '')}.example"
        tenant = await self.tenant(admin_key, name, owner_email=email)
        session = await self.sign_in(f"/api/v1/auth/invites/{tenant['owner_invite']['token']}/accept",
                                     {"password": password})
        return tenant, session

    async def chatbot(self, key: str, **fields) -> dict:
        payload = {"name": "Helper", "persona": {
            "greeting": "Hello from Acme!",
            "fallback_answer": "Sorry, I do not know that yet, please email help@acme.example."}, **fields}
        status, body = await self.call("POST", "/api/v1/chatbots", key=key, json=payload)
        assert status == 201, body
        return body

    async def conversation(self, embed_id: str, base: str | None = None, headers: dict | None = None) -> dict:
        status, body = await self.call("POST", f"/api/widget/v1/{embed_id}/conversations", base=base,
                                       headers=headers or {})
        assert status == 201, body
        return body

    async def say(self, embed_id: str, conv: dict, text: str, client_id: str, **kwargs) -> tuple[int, dict]:
        return await self.call("POST", f"/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/messages",
                               key=conv["visitor_token"], json={"text": text, "client_message_id": client_id},
                               **kwargs)

    async def stream(self, embed_id: str, conv: dict, *, base: str | None = None,
                     last_event_id: str | None = None) -> SseStream:
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        resp = await self.http.get(
            f"{base or self.base}/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/stream",
            params={"token": conv["visitor_token"]}, headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return SseStream(resp)

    async def transcript(self, embed_id: str, conv: dict) -> list[dict]:
        status, body = await self.call(
            "GET", f"/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/messages",
            key=conv["visitor_token"])
        assert status == 200, body
        return body["data"]


@pytest.fixture
async def api(stack):
    async with aiohttp.ClientSession() as http:
        yield Api(http, stack.gateway)


@pytest.fixture(scope="session")
def site(stack):
    """nginx with the container's template in front of the stack."""
    url = frontend.start("test")
    yield url
    frontend.stop("test")


@pytest.fixture
async def bot(api, stack):
    tenant = await api.tenant(stack.admin_key)
    chatbot = await api.chatbot(tenant["api_key"]["key"])
    return {"tenant": tenant, "key": tenant["api_key"]["key"], "chatbot": chatbot, "embed_id": chatbot["embed_id"]}
