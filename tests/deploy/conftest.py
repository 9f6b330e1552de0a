"""docker-compose.prod.yml, started for real (`make test-deploy` only; see scripts/deploy_test.py).

The stack is the production compose file plus tests/deploy/docker-compose.override.yml, which
only swaps images. Coolify's SERVICE_* variables are filled in as Coolify would (random
letters and digits), and the "public" URL is a stand-in for Coolify's proxy: an nginx
container on the compose network that appends the client's address to X-Forwarded-For, as
Traefik does, published on 127.0.0.1 only. Clients with their own addresses sit on a second
network the suite creates (`edge`), behind that proxy. Everything the suite starts carries
the label avatarchat.deploytest and is removed at the end, also on failure.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import string
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DOCKER = os.environ.get("DOCKER_BIN", "/usr/bin/docker")
WORK = Path(os.environ.get("AVATARCHAT_DEPLOY_WORK", ROOT / ".data" / "deploy"))
SLOT = int(os.environ.get("AVATARCHAT_TEST_SLOT", "0") or 0)
PROJECT = f"avatarchat-deploytest{SLOT}"
LABEL = f"avatarchat.deploytest={PROJECT}"
COMPOSE_NET = f"{PROJECT}_default"
EDGE_NET = f"{PROJECT}_edge"
EDGE_PREFIX = f"10.213.{SLOT}"
PROXY_IP = f"{EDGE_PREFIX}.2"
CLIENT_IPS = (f"{EDGE_PREFIX}.10", f"{EDGE_PREFIX}.11")
PROXY_PORT = 18190 + SLOT
PUBLIC_URL = f"http://127.0.0.1:{PROXY_PORT}"
SERVICES = ("app", "frontend", "postgres", "rabbitmq")
APP_IMAGE = "avatarchat-deploytest/app:latest"
POSTGRES_IMAGE = "avatarchat-deploytest/postgres:latest"
NGINX_IMAGE = "avatarchat-local/nginx:bookworm"
DB_SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")
ARTIFACTS = ROOT / "test-artifacts" / "deploy"


def _generated(length: int = 32) -> str:
    """What Coolify generates for SERVICE_PASSWORD_* / SERVICE_USER_*: letters and digits."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def coolify_variables() -> dict[str, str]:
    env = {f"SERVICE_PASSWORD_{name}": _generated() for name in (
        "POSTGRES", "RABBITMQ", "ADMINKEY", "VISITORTOKEN", "SECRETKEY", "INTERNAL",
        *(f"{svc.upper()}DB" for svc in DB_SERVICES))}
    env["SERVICE_USER_RABBITMQ"] = _generated(16)
    # the domain Coolify would generate for frontend:8080; here, the proxy stand-in on loopback
    env["SERVICE_URL_FRONTEND"] = env["SERVICE_URL_FRONTEND_8080"] = PUBLIC_URL
    # Optional variables an operator sets in Coolify's UI: nginx believes X-Forwarded-For from
    # Docker's own address pools, where the compose network (and so the proxy) lives, and not
    # from the clients' network (10.213.x); and a platform LLM the operator runs on the network.
    env["TRUSTED_PROXY_RANGES"] = "172.16.0.0/12 192.168.0.0/16"
    env["OPENAI_API_KEY"] = "sk-operator-" + _generated(16)
    env["OPENAI_BASE_URL"] = "http://fake-llm:8000/v1"
    return env


def docker(*args: str, check: bool = True, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


@dataclass
class Http:
    """Tiny JSON client (urllib) for requests from this machine through the proxy."""
    base: str

    def call(self, method: str, path: str, *, key: str | None = None, json_body=None, data: bytes | None = None,
             headers: dict | None = None, timeout: float = 30) -> tuple[int, dict | None, dict]:
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                raw, status, resp_headers = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            raw, status, resp_headers = exc.read(), exc.code, dict(exc.headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"raw": raw[:500].decode(errors="replace")}
        return status, body, resp_headers


def multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def create_shop(public: Http, admin_key: str) -> dict:
    """Admin creates a tenant, the tenant a chatbot, and uploads its FAQ: all through the public URL."""
    from scripts.seed import DEMO_CHATBOT, FAQ

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


@dataclass
class Deployment:
    """A compose project this suite starts and removes. The scale test (tests/scale) uses the same
    class with its own project, files, services, label and artifacts."""
    env: dict[str, str]
    measured: dict[str, str] = field(default_factory=dict)
    project: str = PROJECT
    label: str = LABEL
    files: tuple[Path, ...] = (ROOT / "docker-compose.prod.yml", HERE / "docker-compose.override.yml")
    services: tuple[str, ...] = SERVICES
    artifacts: Path = ARTIFACTS
    work: Path = WORK

    # --- compose -------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["docker-compose", "-p", self.project, *(arg for f in self.files for arg in ("-f", str(f))), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **self.env})
        if check and proc.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed: {proc.stderr.strip()[-3000:]}")
        return proc

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).stdout.strip()
        assert cid, f"no container for {service}"
        return cid

    def health(self, service: str) -> str:
        proc = docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                      self.container(service), check=False)
        return proc.stdout.strip()

    def wait_healthy(self, services=None, timeout: float = 240) -> float:
        services = services or self.services
        started = time.monotonic()
        states = {}
        while time.monotonic() - started < timeout:
            states = {s: self.health(s) for s in services}
            if all(state == "running healthy" for state in states.values()):
                return time.monotonic() - started
            time.sleep(0.5)
        raise AssertionError(f"not healthy after {timeout:.0f} s: {states}\n{self.logs_tail()}")

    def up(self) -> float:
        """`docker-compose up -d` and the seconds until every container is healthy."""
        started = time.monotonic()
        self.compose("up", "-d", "--no-build")
        self.wait_healthy()
        return time.monotonic() - started

    def logs(self, service: str, tail: int | None = None) -> str:
        args = ["logs", "--no-color"] + ([f"--tail={tail}"] if tail else []) + [service]
        return self.compose(*args, check=False).stdout

    def logs_tail(self) -> str:
        return "\n".join(f"--- {s}\n{self.logs(s, tail=30)}" for s in self.services)

    # --- what the suite adds: the proxy, the operator's LLM, clients -------------------------
    def run_extra(self, name: str, *args: str) -> str:
        return docker("run", "-d", "--name", f"{self.project}-{name}", "--label", self.label, *args).stdout.strip()

    def start_edge(self) -> None:
        """The proxy stand-in and the clients behind it, and the operator's LLM server."""
        self.run_extra("fake-llm", "--network", COMPOSE_NET, "--network-alias", "fake-llm",
                       "-v", f"{ROOT / 'tests'}:/app/tests:ro", "--entrypoint", "python", APP_IMAGE,
                       "-m", "tests.deploy.fake_llm")
        docker("create", "--name", f"{PROJECT}-proxy", "--label", LABEL, "--network", EDGE_NET, "--ip", PROXY_IP,
               "-p", f"127.0.0.1:{PROXY_PORT}:80",
               "-v", f"{HERE / 'coolify-proxy.conf'}:/etc/nginx/conf.d/default.conf:ro", NGINX_IMAGE)
        docker("network", "connect", COMPOSE_NET, f"{PROJECT}-proxy")
        docker("start", f"{PROJECT}-proxy")
        for i, ip in enumerate(CLIENT_IPS):
            if not self._running(f"client{i}"):
                self.run_extra(f"client{i}", "--network", EDGE_NET, "--ip", ip, "--entrypoint", "sleep",
                               APP_IMAGE, "infinity")
        self.wait_public()

    def stop_edge(self) -> None:
        """Leave the compose network, so `docker-compose down` can remove it."""
        for name in ("proxy", "fake-llm"):
            docker("rm", "-f", f"{PROJECT}-{name}", check=False)

    def _running(self, name: str) -> bool:
        return docker("inspect", f"{PROJECT}-{name}", check=False).returncode == 0

    def wait_public(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status, _, _ = Http(PUBLIC_URL).call("GET", "/nginx-health", timeout=3) if self._port_open() else (None, None, None)
            if status == 200:
                return
            time.sleep(0.3)
        raise AssertionError(f"the proxy stand-in does not answer on {PUBLIC_URL}: {status}")

    def _port_open(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", PROXY_PORT), timeout=1):
                return True
        except OSError:
            return False

    def python_in(self, container: str, code: str, *args: str, timeout: float = 120) -> str:
        """Run Python in one of the suite's containers (they are all made from the app image)."""
        proc = docker("exec", container, "python", "-c", code, *args, timeout=timeout)
        return proc.stdout

    def record(self, name: str, value: str) -> None:
        self.measured[name] = value
        path = self.work / "measured.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data[name] = value
        self.work.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))

    def compose_subnet(self) -> ipaddress.IPv4Network:
        out = docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", COMPOSE_NET).stdout
        return ipaddress.ip_network(out.strip())

    # --- teardown --------------------------------------------------------------------------
    def save_logs(self) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            (self.artifacts / f"{service}.log").write_text(self.logs(service))

    def remove_everything(self) -> None:
        """Every container and network this suite made, the compose stack and its volumes.
        Images stay (they are the cache)."""
        extras = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.split()
        if extras:
            docker("rm", "-f", "-v", *extras, check=False)
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)
        for net in docker("network", "ls", "-q", "--filter", f"label={self.label}", check=False).stdout.split():
            docker("network", "rm", net, check=False)
        for volume in docker("volume", "ls", "-q", "--filter", f"label={self.label}", check=False).stdout.split():
            docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture(scope="session")
def deployment():
    d = Deployment(env=coolify_variables())
    d.remove_everything()  # what an interrupted earlier run may have left
    try:
        docker("network", "create", "--label", LABEL, "--subnet", f"{EDGE_PREFIX}.0/24", EDGE_NET)
        took = d.up()
        d.record("cold start to healthy (empty volumes)", f"{took:.1f} s")
        subnet = d.compose_subnet()
        trusted = [ipaddress.ip_network(r) for r in d.env["TRUSTED_PROXY_RANGES"].split()]
        assert any(subnet.subnet_of(r) for r in trusted), (
            f"Docker gave the compose network {subnet}, outside the proxy ranges the suite trusts")
        d.start_edge()
        yield d
    finally:
        try:
            d.save_logs()
        finally:
            d.remove_everything()


@pytest.fixture(scope="session")
def public() -> Http:
    return Http(PUBLIC_URL)
