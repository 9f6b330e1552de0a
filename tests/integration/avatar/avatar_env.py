"""Test settings from the environment, else from .data/test.env."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def env(name: str) -> str:
    """From the environment, else from .data/test.env (what `make test` sources)."""
    if os.environ.get(name):
        return os.environ[name]
    env_file = REPO_ROOT / ".data" / "test.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
                return value.strip()
    raise RuntimeError(f"{name} is not set: source .data/test.env (make test does)")
