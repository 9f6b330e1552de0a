"""The production compose file, running: what a visitor, a tenant and an operator would notice.

Tests run in file order against one stack; the last two stop and restart parts of it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
import urllib.request
import uuid

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from scripts.seed import DEMO_CHATBOT, FAQ
from services.avatar.default_avatar import build_glb
from tests.deploy.conftest import (APP_IMAGE, CLIENT_IPS, COMPOSE_NET, DB_SERVICES, DOCKER, LABEL, POSTGRES_IMAGE,
                                   PROJECT, PROXY_IP, PUBLIC_URL, ROOT, Deployment, Http, docker, multipart)
from tests.e2e.conftest import SseStream
from tests.e2e.test_widget_browser import CHROMIUM_ARGS

pytestmark = pytest.mark.timeout(600)
INTERNAL_PORTS = (3010, 3020, 3030, 3040, 3050)


# --- the tenant's side --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shop(deployment: Deployment, public: Http) -> dict:
    """Admin creates a tenant, the tenant a chatbot, and uploads its FAQ: all through the proxy."""
    admin_key = deployment.env["SERVICE_PASSWORD_ADMINKEY"]
    status, tenant, _ = public.call("POST", "/api/v1/admin/tenants", key=admin_key,
                                    json_body={"name": "Northwind Bikes"})
    assert status == 201, tenant
    key = tenant["api_key"]["key"]
    status, chatbot, _ = public.call("POST", "/api/v1/chatbots", key=key, json_body=DEMO_CHATBOT)
    assert status == 201, chatbot
    body, content_type = multipart({"title": "Northwind Bikes FAQ"}, "file", "northwind-faq.md",
                                   FAQ.read_bytes(), "text/markdown")
    base = f"/api/v1/chatbots/{chatbot['id']}/knowledge/documents"
    status, document, _ = public.call("POST", base, key=key, data=body, headers={"Content-Type": content_type})
    assert status == 202, document
    return {"tenant": tenant["tenant"], "key": key, "chatbot": chatbot, "document": document}


def test_every_container_is_healthy_and_only_the_proxy_is_published(deployment: Deployment):
    for service in ("app", "frontend", "postgres", "rabbitmq"):
        assert deployment.health(service) == "running healthy"
        # nothing of the stack is published on the host: the way in is Coolify's proxy
        assert docker("port", deployment.container(service)).stdout.strip() == ""
    # the frontend's health check takes the visitor's path, through nginx to the gateway
    test = json.loads(docker("inspect", "-f", "{{json .Config.Healthcheck.Test}}",
                             deployment.container("frontend")).stdout)
    assert test[-1] == "http://127.0.0.1:8080/health"
    # every program's log is in the container's log (what Coolify shows)
    app_log = deployment.logs("app")
    for program in ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics"):
        assert f'"service": "{program}"' in app_log and "service_started" in app_log, program


def test_admin_creates_a_tenant_and_the_tenant_a_chatbot(shop: dict, public: Http):
    status, chatbot, _ = public.call("GET", f"/api/v1/chatbots/{shop['chatbot']['id']}", key=shop["key"])
    assert status == 200 and chatbot["name"] == DEMO_CHATBOT["name"]
    # the snippet a tenant pastes points at the public address Coolify gave us
    status, snippet, _ = public.call("GET", f"/api/v1/chatbots/{chatbot['id']}/embed-snippet", key=shop["key"])
    assert status == 200, snippet
    assert f'src="{PUBLIC_URL}/embed.js" data-embed-id="{chatbot["embed_id"]}"' in snippet["snippet"]
    # and a visitor's widget finds the chatbot
    status, config, _ = public.call("GET", f"/api/widget/v1/{chatbot['embed_id']}/config")
    assert status == 200 and config["name"] == DEMO_CHATBOT["name"], config


def test_a_document_is_uploaded_and_indexed(shop: dict, public: Http):
    path = f"/api/v1/chatbots/{shop['chatbot']['id']}/knowledge/documents/{shop['document']['id']}"
    deadline = time.monotonic() + 120
    document = None
    while time.monotonic() < deadline:
        status, document, _ = public.call("GET", path, key=shop["key"])
        assert status == 200, document
        if document["status"] in ("indexed", "failed"):
            break
        time.sleep(0.5)
    assert document and document["status"] == "indexed", document
    status, found, _ = public.call("POST", f"/api/v1/chatbots/{shop['chatbot']['id']}/knowledge/search",
                                   key=shop["key"], json_body={"query": "opening hours on Saturday"})
    assert status == 200, found
    assert "Saturday" in json.dumps(found)


# --- the visitor's side -------------------------------------------------------------------------

async def _conversation(http: aiohttp.ClientSession, embed_id: str) -> dict:
    async with http.post(f"{PUBLIC_URL}/api/widget/v1/{embed_id}/conversations") as resp:
        assert resp.status == 201, await resp.text()
        return await resp.json()


async def _say(http: aiohttp.ClientSession, embed_id: str, conv: dict, text: str, client_id: str,
               timeout: float = 10) -> int:
    async with http.post(f"{PUBLIC_URL}/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/messages",
                         json={"text": text, "client_message_id": client_id},
                         headers={"Authorization": f"Bearer {conv['visitor_token']}"},
                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        await resp.read()
        return resp.status


async def _stream(http: aiohttp.ClientSession, embed_id: str, conv: dict, last_event_id: str | None = None):
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    resp = await http.get(f"{PUBLIC_URL}/api/widget/v1/{embed_id}/conversations/{conv['conversation_id']}/stream",
                          params={"token": conv["visitor_token"]}, headers=headers,
                          timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
    assert resp.status == 200, await resp.text()
    return SseStream(resp)


async def test_a_visitor_reply_streams_token_by_token_through_nginx(shop: dict, public: Http):
    # a chatbot on the operator's OpenAI-compatible server, which thinks between tokens
    status, bot, _ = public.call("POST", "/api/v1/chatbots", key=shop["key"], json_body={
        "name": "Streamer", "ai": {"provider": "openai", "model": "gpt-4o-mini"}})
    assert status == 201, bot
    async with aiohttp.ClientSession() as http:
        conv = await _conversation(http, bot["embed_id"])
        stream = await _stream(http, bot["embed_id"], conv)
        try:
            assert await _say(http, bot["embed_id"], conv, "When does the workshop open?", "m1") == 202
            arrivals: list[tuple[float, str]] = []
            while True:
                event = await stream.next(timeout=30)
                assert event is not None, "the stream ended early"
                if event.event == "message.delta":
                    arrivals.append((time.monotonic(), event.data["text"]))
                if event.event in ("message.end", "error"):
                    break
        finally:
            stream.response.close()
    assert event.event == "message.end", event.data
    assert "".join(text for _, text in arrivals) == event.data["text"]
    assert event.data["text"].startswith("Our workshop opens at nine")
    # token by token as the model produced them, not one burst at the end
    assert len(arrivals) >= 8, arrivals
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread > 1.0, f"all {len(arrivals)} deltas arrived within {spread:.2f} s"
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:])]
    assert sum(1 for gap in gaps if gap > 0.05) >= len(gaps) // 2, gaps


async def test_the_demo_page_in_chromium_gets_a_grounded_answer_with_its_citation(
        deployment: Deployment, shop: dict):
    # the page nginx serves, with this chatbot's embed id in place of the demo placeholder
    # (what `make run` writes into the local copy of the same page)
    docker("exec", deployment.container("frontend"), "sh", "-c",
           f"sed 's/__DEMO_EMBED_ID__/{shop['chatbot']['embed_id']}/' /usr/share/nginx/html/index.html"
           " > /usr/share/nginx/html/deploy-demo.html")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{PUBLIC_URL}/deploy-demo.html")
            await expect(page.locator("h1")).to_contain_text("City bikes")
            await page.locator("#avatarchat-widget").locator("button.launcher").click()
            frame = page.frame_locator("#avatarchat-widget iframe")
            await frame.locator("#input").fill("What are your opening hours on Saturday?")
            await frame.locator("#input").press("Enter")
            answer = frame.locator(".message.assistant:not(.greeting)").last
            await expect(answer.locator(".text")).to_contain_text("Saturday from 10:00 to 17:00", timeout=30_000)
            await expect(answer.locator(".citations")).to_contain_text("Northwind Bikes FAQ")
            (ROOT / "test-artifacts" / "deploy").mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ROOT / "test-artifacts" / "deploy" / "demo-page.png"))
            assert errors == []
        finally:
            await browser.close()


# --- client addresses ---------------------------------------------------------------------------

HAMMER = """
import json, sys, urllib.request, urllib.error
url, count, forged, until_429 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
results = []  # [status, RateLimit-Remaining]
for _ in range(count):
    request = urllib.request.Request(url, headers={"X-Forwarded-For": forged} if forged else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            results.append([resp.status, resp.headers.get("RateLimit-Remaining")])
    except urllib.error.HTTPError as exc:
        results.append([exc.code, exc.headers.get("RateLimit-Remaining")])
    if until_429 and results[-1][0] == 429:
        break
print(json.dumps(results))
"""

# Drain the client's bucket until a 429, then at once load the chat frame (whose nginx
# subrequest to the gateway's frame-policy is rate-limited like any widget call); repeat until
# two frame loads were refused. Each try is refused unless the next token (0.2 s apart) came in
# between, so with the visitor's address on the subrequest two refusals come within a few tries;
# with nginx's own address on it, none ever would.
FRAME_AFTER_DRAIN = """
import json, sys, urllib.request, urllib.error
config, frame = sys.argv[1], sys.argv[2]
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
frames = []
while len(frames) < 20 and sum(1 for s in frames if s != 200) < 2:
    while get(config) != 429:
        pass
    frames.append(get(frame))
print(json.dumps(frames))
"""


def _hammer(d: Deployment, container: str, url: str, count: int, forged: str = "",
            until_429: bool = False) -> list[list]:
    return json.loads(d.python_in(container, HAMMER, url, str(count), forged, "1" if until_429 else "0"))


def _statuses(results: list[list]) -> list[int]:
    return [status for status, _ in results]


def _remaining(results: list[list]) -> list[int]:
    return [int(left) for status, left in results if status == 200]


def test_clients_behind_the_proxy_get_their_own_rate_limit_buckets(deployment: Deployment, shop: dict):
    """Through Coolify's proxy every request arrives from the proxy's address; the visitor's own
    address must still pick the bucket, and a client's own X-Forwarded-For must not."""
    url = f"http://{PROXY_IP}/api/widget/v1/{shop['chatbot']['embed_id']}/config"
    a, b = f"{PROJECT}-client0", f"{PROJECT}-client1"
    # 300 a minute per address (GCRA: a burst of 300, then one more every 0.2 s)
    first = _statuses(_hammer(deployment, a, url, 1000, until_429=True))
    assert first[-1] == 429 and len(first) > 300 and set(first[:-1]) == {200}, first
    # the other visitor, behind the same proxy, has its own full bucket
    b_results = _hammer(deployment, b, url, 5)
    assert _statuses(b_results) == [200] * 5 and min(_remaining(b_results)) >= 290, b_results
    # a forged X-Forwarded-For buys client A no fresh bucket, and spends nobody else's: A stays
    # on its empty bucket (429, or a single refilled token)
    for forged in (CLIENT_IPS[1], "198.51.100.77"):
        results = _hammer(deployment, a, url, 10, forged=forged)
        assert 429 in _statuses(results) and all(left <= 1 for left in _remaining(results)), results
    results = _hammer(deployment, b, url, 5, forged=CLIENT_IPS[0])
    assert _statuses(results) == [200] * 5 and min(_remaining(results)) >= 280, results
    # nginx's frame-policy subrequest (loading the chat frame) counts against the visitor's own
    # address too, not against nginx's
    frame = f"http://{PROXY_IP}/widget/?embed_id={shop['chatbot']['embed_id']}"
    frames = json.loads(deployment.python_in(a, FRAME_AFTER_DRAIN, url, frame))
    assert sum(1 for status in frames if status != 200) >= 2, frames
    assert _statuses(_hammer(deployment, b, frame, 3)) == [200] * 3
    # the gateway believes X-Forwarded-For from nginx only: a container on the compose network
    # that talks to it directly and claims to be client A keeps its own, full bucket
    probe = deployment.run_extra("probe", "--network", COMPOSE_NET, "--entrypoint", "sleep", APP_IMAGE, "infinity")
    try:
        direct = f"http://app:3000/api/widget/v1/{shop['chatbot']['embed_id']}/config"
        results = _hammer(deployment, probe, direct, 3, forged=CLIENT_IPS[0])
        assert _statuses(results) == [200] * 3 and min(_remaining(results)) >= 295, results
    finally:
        docker("rm", "-f", probe, check=False)


# --- the internal network -----------------------------------------------------------------------

PROBE_PORTS = """
import json, socket, sys, urllib.request, urllib.error
host = sys.argv[1]
out = {}
for port in map(int, sys.argv[2].split(",")):
    try:
        socket.create_connection((host, port), timeout=3).close()
        out[port] = "open"
    except OSError as exc:
        out[port] = type(exc).__name__
print(json.dumps(out))
"""

INTERNAL_CALL = """
import json, sys, urllib.request, urllib.error
method, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
headers = {"Content-Type": "application/json"}
if key:
    headers["X-Internal-Key"] = key
body = json.dumps({"api_key": "sk-attacker", "base_url": "https://attacker.example/v1"}).encode() if method == "PUT" else None
request = urllib.request.Request(url, data=body, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=10) as resp:
        print(json.dumps([resp.status, json.loads(resp.read() or b"null")]))
except urllib.error.HTTPError as exc:
    print(json.dumps([exc.code, json.loads(exc.read() or b"null")]))
"""


def test_no_internal_port_is_reachable_from_another_container(deployment: Deployment, shop: dict):
    probe = deployment.run_extra("probe", "--network", COMPOSE_NET, "--entrypoint", "sleep", APP_IMAGE, "infinity")
    try:
        # one container: the five internal services listen on its loopback only
        ports = json.loads(deployment.python_in(probe, PROBE_PORTS, "app", "3000," + ",".join(map(str, INTERNAL_PORTS))))
        assert ports["3000"] == "open"
        assert {ports[str(p)] for p in INTERNAL_PORTS} == {"ConnectionRefusedError"}, ports
        # and the gateway, which is reachable, serves no /internal/ route without the credential
        status, body = json.loads(deployment.python_in(probe, INTERNAL_CALL, "GET", "http://app:3000/internal/usage", ""))
        assert status == 401 and body["error"]["code"] == "unauthorized"
    finally:
        docker("rm", "-f", probe, check=False)


def test_programs_split_across_containers_require_the_internal_credential(deployment: Deployment, shop: dict):
    """AVATARCHAT_PROGRAMS=ai,knowledge in its own container, listening on its network interface:
    every /internal/ route answers 401 without the shared credential."""
    env = deployment.env
    app_env = _app_environment(deployment)
    split = deployment.run_extra("split", "--network", COMPOSE_NET, "--network-alias", "split",
                                 *[arg for k, v in {**app_env, "AVATARCHAT_PROGRAMS": "ai,knowledge",
                                                    "BIND_HOST": "0.0.0.0"}.items() for arg in ("-e", f"{k}={v}")],
                                 APP_IMAGE)
    probe = deployment.run_extra("probe", "--network", COMPOSE_NET, "--entrypoint", "sleep", APP_IMAGE, "infinity")
    try:
        deadline = time.monotonic() + 90
        while True:
            ports = json.loads(deployment.python_in(probe, PROBE_PORTS, "split", "3020,3030"))
            if set(ports.values()) == {"open"}:
                break
            assert time.monotonic() < deadline, f"the split container did not listen: {ports}\n" + \
                docker("logs", "--tail", "40", split, check=False).stdout
            time.sleep(1)
        tenant = shop["tenant"]["id"]
        keys_url = f"http://split:3020/internal/tenants/{tenant}/provider-keys/openai"
        for key in ("", "wrong-" + env["SERVICE_PASSWORD_INTERNAL"][6:]):
            status, body = json.loads(deployment.python_in(probe, INTERNAL_CALL, "PUT", keys_url, key))
            assert status == 401, body
            assert body["error"]["code"] == "unauthorized"
            status, body = json.loads(deployment.python_in(probe, INTERNAL_CALL, "POST",
                                                           "http://split:3030/internal/search", key))
            assert status == 401, body
        # with it, the route is there (and still checks its input)
        status, body = json.loads(deployment.python_in(probe, INTERNAL_CALL, "POST", "http://split:3030/internal/search",
                                                       env["SERVICE_PASSWORD_INTERNAL"]))
        assert status in (400, 415, 422), body
        # no attacker's base_url was stored for the tenant
        status, stored, _ = Http(PUBLIC_URL).call("GET", "/api/v1/provider-keys/openai", key=shop["key"])
        assert "attacker" not in json.dumps(stored), stored
    finally:
        docker("rm", "-f", probe, split, check=False)


def _app_environment(deployment: Deployment) -> dict:
    """The app service's environment as docker-compose resolved it from the Coolify variables."""
    resolved = docker("inspect", "-f", "{{json .Config.Env}}", deployment.container("app"))
    pairs = [item.split("=", 1) for item in json.loads(resolved.stdout)]
    skip = {"PATH", "HOSTNAME", "LANG", "HOME"}
    return {k: v for k, v in pairs if k not in skip}


# --- start-up refusals --------------------------------------------------------------------------

def test_a_missing_secret_stops_start_up_with_a_message_naming_it(deployment: Deployment):
    env = _app_environment(deployment)
    for variable, value in (("SECRET_KEY", None), ("ADMIN_API_KEY", "changeme"), ("INTERNAL_API_KEY", "")):
        args = [a for k, v in env.items() if k != variable for a in ("-e", f"{k}={v}")]
        if value is not None:
            args += ["-e", f"{variable}={value}"]
        proc = docker("run", "--rm", "--label", LABEL, "--network", "none", *args, APP_IMAGE, check=False, timeout=60)
        assert proc.returncode == 78, (proc.returncode, proc.stdout, proc.stderr)
        assert f"refusing to start: {variable}" in proc.stderr, proc.stderr


def test_unreachable_postgres_or_rabbitmq_keeps_the_container_unhealthy_and_says_why(deployment: Deployment):
    env = _app_environment(deployment)
    cases = {
        # on a network of its own, where no postgres exists
        "postgres": ([], "none"),
        # on the compose network with the real Postgres, but a broker host that does not exist
        "rabbitmq": (["-e", "AMQP_URL=amqp://user:secret@rabbitmq-gone:5672/"], COMPOSE_NET),
    }
    started = {}
    for dependency, (extra, network) in cases.items():
        args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")] + extra
        started[dependency] = deployment.run_extra(f"no-{dependency}", "--network", network, "--health-interval", "2s",
                                                   "--health-start-period", "1s", "--health-retries", "2", *args,
                                                   APP_IMAGE)
    try:
        time.sleep(15)
        for dependency, container in started.items():
            state = docker("inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", container).stdout.strip()
            assert state == "running unhealthy", (dependency, state)
            log = docker("logs", container, check=False).stdout
            lines = [json.loads(line) for line in log.splitlines() if line.startswith("{") and "dependency_unreachable" in line]
            assert lines, log[-3000:]
            assert {line["dependency"] for line in lines} == {dependency}, lines[:3]
            assert all(line["error"] for line in lines) and "secret" not in log
    finally:
        docker("rm", "-f", *started.values(), check=False)


# --- operations ---------------------------------------------------------------------------------

def test_a_backup_restores_into_a_fresh_postgres(deployment: Deployment, shop: dict, public: Http, tmp_path):
    status, conversation, _ = public.call("POST", f"/api/widget/v1/{shop['chatbot']['embed_id']}/conversations")
    assert status == 201, conversation  # so every service's database holds something
    env = deployment.env
    source = deployment.container("postgres")

    def count(container: str, svc: str, sql: str) -> str:
        # as the service's own role, over TCP with its password: what the service would see
        password = env[f"SERVICE_PASSWORD_{svc.upper()}DB"]
        return docker("exec", "-e", f"PGPASSWORD={password}", container, "psql", "-h", "127.0.0.1", "-U",
                      f"avatarchat_{svc}", "-d", f"avatarchat_{svc}", "-Atc", sql).stdout.strip()

    deadline = time.monotonic() + 60
    while count(source, "analytics", "SELECT count(*) FROM events") == "0":  # analytics consumes in batches
        assert time.monotonic() < deadline, "analytics recorded no event"
        time.sleep(0.5)
    backup_dir = tmp_path / "backup"
    scripts_env = {**os.environ, "DOCKER": DOCKER}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "backup.sh"), source, str(backup_dir)],
                          capture_output=True, text=True, timeout=300, env=scripts_env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in backup_dir.glob("*.dump")) == sorted(f"avatarchat_{s}.dump" for s in DB_SERVICES)
    # a fresh Postgres from our image, as on a new server (the same generated passwords)
    db_env = [a for svc in DB_SERVICES
              for a in ("-e", f"{svc.upper()}_DB_PASSWORD={env[f'SERVICE_PASSWORD_{svc.upper()}DB']}")]
    fresh = deployment.run_extra("restored", "--network", "none", "-e", "POSTGRES_PASSWORD=fresh-" + env["SERVICE_PASSWORD_POSTGRES"],
                                 *db_env, POSTGRES_IMAGE)
    try:
        deadline = time.monotonic() + 90
        while docker("exec", fresh, "pg_isready", "-h", "127.0.0.1", "-U", "postgres", check=False).returncode != 0:
            assert time.monotonic() < deadline, docker("logs", fresh, check=False).stderr[-2000:]
            time.sleep(1)
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "restore.sh"), fresh, str(backup_dir)],
                              capture_output=True, text=True, timeout=300, env=scripts_env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


        for svc, sql in (("gateway", "SELECT count(*) FROM tenants"), ("gateway", "SELECT count(*) FROM chatbots"),
                         ("knowledge", "SELECT count(*) FROM chunks WHERE embedding IS NOT NULL"),
                         ("conversation", "SELECT count(*) FROM conversations"),
                         ("analytics", "SELECT count(*) FROM events")):
            original, restored = count(source, svc, sql), count(fresh, svc, sql)
            assert restored == original and int(original) > 0, (svc, sql, original, restored)
        # pgvector works in the restored database
        nearest = count(fresh, "knowledge", "SELECT count(*) FROM (SELECT 1 FROM chunks ORDER BY embedding <=> "
                                            "(SELECT embedding FROM chunks LIMIT 1) LIMIT 3) AS t")
        assert nearest == "3"
    finally:
        docker("rm", "-f", "-v", fresh, check=False)


def test_volumes_survive_docker_compose_down_and_up(deployment: Deployment, shop: dict, public: Http):
    glb = build_glb()
    body, content_type = multipart({"name": "Shop robot"}, "file", "robot.glb", glb, "model/gltf-binary")
    status, avatar, _ = public.call("POST", "/api/v1/avatars", key=shop["key"], data=body,
                                    headers={"Content-Type": content_type})
    assert status == 201, avatar
    status, body, _ = public.call("PUT", f"/api/v1/chatbots/{shop['chatbot']['id']}/avatar", key=shop["key"],
                                  json_body={"avatar_id": avatar["id"]})
    assert status == 200, body

    deployment.stop_edge()
    deployment.compose("down", "--timeout", "30")
    assert deployment.compose("ps", "-q").stdout.strip() == ""
    took = deployment.up()
    deployment.record("start to healthy with existing volumes", f"{took:.1f} s")
    deployment.start_edge()

    status, tenant, _ = public.call("GET", "/api/v1/tenant", key=shop["key"])
    assert status == 200 and tenant["id"] == shop["tenant"]["id"], tenant
    status, chosen, _ = public.call("GET", f"/api/v1/chatbots/{shop['chatbot']['id']}/avatar", key=shop["key"])
    assert status == 200 and chosen["avatar_id"] == avatar["id"], chosen
    status, same, _ = public.call("GET", f"/api/v1/avatars/{avatar['id']}", key=shop["key"])
    assert status == 200, same
    with urllib.request.urlopen(f"{PUBLIC_URL}/api/widget/v1/avatars/{avatar['id']}/model.glb",
                                                      timeout=30) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == hashlib.sha256(glb).hexdigest()


async def test_a_crashed_app_container_comes_back_and_every_accepted_message_ends(
        deployment: Deployment, shop: dict):
    """Under traffic, the app container's processes die at once (as from the OOM killer). The
    restart policy brings it back; every message that was answered 202 gets its reply or an
    `error` event on the visitor's stream.

    (`docker kill` itself counts as an operator's stop: Docker then skips the restart policy by
    design. Killing the container's main process is the crash the policy is for.)"""
    embed_id = shop["chatbot"]["embed_id"]
    app = deployment.container("app")
    accepted: dict[str, int] = {}
    outcomes: dict[str, dict] = {}
    async with aiohttp.ClientSession() as http:
        visitors = [await _conversation(http, embed_id) for _ in range(6)]
        for conv in visitors:
            accepted[conv["conversation_id"]] = 0
        stop = asyncio.Event()
        refused: list[object] = []

        async def visitor(conv: dict, offset: float) -> None:
            await asyncio.sleep(offset)
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    status = await _say(http, embed_id, conv, "Can I rent a cargo bike?", f"m{n}-{uuid.uuid4().hex[:6]}")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    status = type(exc).__name__
                if status == 202:
                    accepted[conv["conversation_id"]] += 1
                else:
                    refused.append(status)
                await asyncio.sleep(3)

        traffic = [asyncio.create_task(visitor(conv, i * 0.5)) for i, conv in enumerate(visitors)]
        await asyncio.sleep(6)
        pid = docker("inspect", "-f", "{{.State.Pid}}", app).stdout.strip()
        killed_at = time.monotonic()
        os.kill(int(pid), 9)
        # back: the same container, restarted by its policy, healthy again
        while True:
            state = docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}} {{.State.Health.Status}}", app).stdout.split()
            if state[0] != "0" and state[1:] == ["running", "healthy"]:
                break
            assert time.monotonic() - killed_at < 180, state
            await asyncio.sleep(0.5)
        back_healthy = time.monotonic() - killed_at
        while await _public_config(http, embed_id) != 200:
            assert time.monotonic() - killed_at < 240
            await asyncio.sleep(0.5)
        back_public = time.monotonic() - killed_at
        await asyncio.sleep(8)  # traffic on the recovered stack
        stop.set()
        await asyncio.gather(*traffic)
        deployment.record("recovery after the app container is killed (healthy)", f"{back_healthy:.1f} s")
        deployment.record("recovery after the app container is killed (serving through the proxy)", f"{back_public:.1f} s")
        assert sum(accepted.values()) >= 12, (accepted, refused)
        assert refused, "no request failed while the app was down: did it really die?"

        async def outcomes_of(conv: dict) -> None:
            want = accepted[conv["conversation_id"]]
            ended: dict[str, str] = {}
            stream = await _stream(http, embed_id, conv, last_event_id="0-end")  # everything since the start
            try:
                deadline = time.monotonic() + 150
                while len(ended) < want:
                    event = await stream.next(timeout=max(1.0, deadline - time.monotonic()))
                    assert event is not None, "stream closed"
                    if event.event in ("message.end", "error"):
                        ended[event.data["reply_id"]] = event.event
            finally:
                stream.response.close()
            outcomes[conv["conversation_id"]] = ended

        await asyncio.gather(*(outcomes_of(conv) for conv in visitors))
    for conv in visitors:
        cid = conv["conversation_id"]
        assert len(outcomes[cid]) >= accepted[cid], (cid, accepted[cid], outcomes[cid])
    assert deployment.health("frontend") == "running healthy"


async def _public_config(http: aiohttp.ClientSession, embed_id: str) -> int:
    try:
        async with http.get(f"{PUBLIC_URL}/api/widget/v1/{embed_id}/config",
                            timeout=aiohttp.ClientTimeout(total=5)) as resp:
            return resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return 0
