"""Shared fixtures. `make test` sources .data/test.env (written by scripts/infra.py), so the
tests find a real Postgres superuser URL (POSTGRES_URL) and a RabbitMQ URL (AMQP_URL)."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parent.parent


def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with `make test`")
    return value


def db_url(admin_url: str, database: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}"))


@pytest.fixture
async def scratch_db():
    """A throwaway database (with pgvector), dropped afterwards; yields its URL."""
    admin_url = require_env("POSTGRES_URL")
    name = f"scratch_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(db_url(admin_url, name))
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        await conn.close()
        yield db_url(admin_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def scratch_vhost():
    """A throwaway RabbitMQ vhost, so a test's queues never meet another test's; yields its URL."""
    require_env("AMQP_URL")
    name = f"scratch_{secrets.token_hex(6)}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    base = urlsplit(os.environ["AMQP_URL"])
    try:
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)
