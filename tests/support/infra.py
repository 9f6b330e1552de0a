"""Helpers every test suite shares: the project root, the environment `make test` sets,
throwaway databases and vhosts."""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent.parent


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with `make test`")
    return value


def db_url(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


@contextlib.contextmanager
def scratch_database(prefix: str = "scratch"):
    """A throwaway database (with pgvector), dropped afterwards; yields its URL. Synchronous,
    so session-scoped fixtures can use it as well as test-scoped ones."""
    admin_url = require_env("POSTGRES_URL")
    name = f"{prefix}_{secrets.token_hex(6)}"

    async def create() -> None:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(db_url(admin_url, name))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    _run(create())
    try:
        yield db_url(admin_url, name)
    finally:
        _run(drop())


@contextlib.contextmanager
def scratch_vhost_url(prefix: str = "scratch"):
    """A throwaway RabbitMQ vhost, so a test's queues never meet another test's; yields its URL."""
    base = urlsplit(require_env("AMQP_URL"))
    name = f"{prefix}_{secrets.token_hex(6)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, base.username or "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    try:
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


def _run(coro) -> None:
    """Run ``coro`` whether or not an event loop is already running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    import threading

    thread = threading.Thread(target=asyncio.run, args=(coro,))
    thread.start()
    thread.join()
