"""Bring the local stack up or down with the real supervisord.conf.

    python -m scripts.stack up|down|status

``up`` starts supervisord (if it is not running), waits until the gateway reports every
service healthy, seeds the demo tenant and chatbot, and prints how to chat with it.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scripts.start_app import ROOT, supervisor_env

DATA = ROOT / ".data"


def gateway_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '3000')}"


def supervisorctl(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", str(ROOT / "supervisord.conf"),
                           *args], env=env, capture_output=True, text=True)


def wait_healthy(url: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=3) as resp:
                return json.load(resp)
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.5)
    raise SystemExit(f"the stack did not become healthy in {seconds:.0f}s: {last}; see var/log/")


def up() -> None:
    from scripts import frontend

    frontend.build()
    env = supervisor_env()
    if supervisorctl(env, "pid").returncode != 0:
        subprocess.run([str(Path(sys.executable).parent / "supervisord"), "-c", str(ROOT / "supervisord.conf")],
                       env=env, check=True)
    else:
        supervisorctl(env, "restart", "all")
    wait_healthy(gateway_url(), 90)
    print(supervisorctl(env, "status").stdout)
    from scripts.seed import seed

    demo = asyncio.run(seed(gateway_url(), os.environ["ADMIN_API_KEY"], DATA / "demo.json"))
    frontend.set_demo_embed_id(demo["embed_id"])
    site = frontend.start("run")
    print_demo(demo, site)


def print_demo(demo: dict, site: str) -> None:
    url = gateway_url()
    embed = demo["embed_id"]
    print(f"""
avatarchat is running.

  >>> Open the demo page: {site}/  (a pretend shop; the chat is in the corner) <<<

  >>> The console: {site}/console/   sign in as {demo.get('owner_email', '(no demo owner)')} / {demo.get('owner_password', '-')} <<<
      (the platform admin: {site}/console/#/admin with ADMIN_API_KEY from .data/run.env)

API reference: {site}/api/v1/docs      Gateway: {url}   (logs: var/log/, stop: make stop)

Demo tenant API key: {demo['api_key']}
Demo chatbot: {demo['chatbot_id']}   embed id: {embed}

Chat with it from a shell:
  CONV=$(curl -s -X POST {url}/api/widget/v1/{embed}/conversations)
  CID=$(echo "$CONV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["conversation_id"])')
  TOKEN=$(echo "$CONV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["visitor_token"])')
  curl -N "{url}/api/widget/v1/{embed}/conversations/$CID/stream?token=$TOKEN" &
  curl -s -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" \\
       -d '{{"text": "What are your opening hours?", "client_message_id": "m1"}}' \\
       {url}/api/widget/v1/{embed}/conversations/$CID/messages
""")


def down() -> None:
    from scripts import frontend

    frontend.stop("run")
    env = supervisor_env()
    proc = supervisorctl(env, "shutdown")
    print(proc.stdout or proc.stderr)


def status() -> None:
    print(supervisorctl(supervisor_env(), "status").stdout)


if __name__ == "__main__":
    {"up": up, "down": down, "status": status}[sys.argv[1] if len(sys.argv) > 1 else "status"]()
