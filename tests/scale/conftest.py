"""docker-compose.scale.yml, started for real (`make test-scale` only; see scripts/scale_test.py).

The stack is docker-compose.prod.yml + docker-compose.scale.yml as shipped, plus
tests/scale/docker-compose.override.yml (images, nginx published on 127.0.0.1, the operator's
LLM and a small site to crawl). It reuses the deploy test's Deployment, with its own compose
project, label and port, so both tests can run on one machine; everything it starts is removed
at the end (compose down -v), also on failure.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import aiohttp
import pytest

from tests.deploy.conftest import ROOT, SLOT, Deployment, Http, coolify_variables, docker
from tests.support.stack import Api

HERE = Path(__file__).resolve().parent
PROJECT = f"avatarchat-scaletest{SLOT}"
PORT = 18290 + SLOT
PUBLIC_URL = f"http://127.0.0.1:{PORT}"
GATEWAYS = ("app", "gateway-b")
PROGRAM_CONTAINERS = ("chat-a", "chat-b", "knowledge-a", "knowledge-b", "avatar-a", "avatar-b")
BROKERS = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
SERVICES = (*GATEWAYS, *PROGRAM_CONTAINERS, "frontend", "postgres", *BROKERS)


class ScaleDeployment(Deployment):
    def __init__(self, env: dict[str, str]):
        super().__init__(env=env, project=PROJECT, label=f"avatarchat.scaletest={PROJECT}",
                         files=(ROOT / "docker-compose.prod.yml", ROOT / "docker-compose.scale.yml",
                                HERE / "docker-compose.override.yml"),
                         services=SERVICES, artifacts=ROOT / "test-artifacts" / "scale",
                         work=Path(os.environ.get("AVATARCHAT_SCALE_WORK", ROOT / ".data" / "scale")))

    def up(self) -> float:
        started = time.monotonic()
        self.compose("up", "-d", "--no-build")
        self.wait_healthy(timeout=600)
        return time.monotonic() - started

    def kill(self, service: str) -> None:
        docker("kill", self.container(service))

    def start(self, service: str) -> None:
        """`docker kill` is an operator's stop, so the restart policy leaves it down: start it."""
        docker("start", self.container(service))

    def running_brokers(self, via: str = "rabbitmq") -> list[str]:
        # the CLI boots an Erlang VM of its own: minutes on a machine loaded far past its cores
        out = docker("exec", self.container(via), "rabbitmqctl", "-q", "cluster_status", "--formatter", "json",
                     check=False, timeout=600)
        if out.returncode != 0:
            return []
        return sorted(json.loads(out.stdout).get("running_nodes", []))

    def queue_types(self) -> dict[str, str]:
        out = docker("exec", self.container("rabbitmq"), "rabbitmqctl", "-q", "list_queues", "name", "type",
                     "--formatter", "json", timeout=600).stdout
        return {q["name"]: q["type"] for q in json.loads(out)}

    def dead_letters(self) -> dict[str, int]:
        out = docker("exec", self.container("rabbitmq"), "rabbitmqctl", "-q", "list_queues", "name", "messages",
                     "--formatter", "json", timeout=600).stdout
        return {q["name"]: q["messages"] for q in json.loads(out) if q["name"].endswith(".dlq")}


def scale_variables() -> dict[str, str]:
    env = coolify_variables()
    env["SERVICE_PASSWORD_RABBITMQCOOKIE"] = coolify_variables()["SERVICE_PASSWORD_INTERNAL"]
    env["SERVICE_URL_FRONTEND"] = env["SERVICE_URL_FRONTEND_8080"] = PUBLIC_URL
    env["AVATARCHAT_SCALE_PORT"] = str(PORT)
    env["AVATARCHAT_SCALE_TESTS"] = str(ROOT / "tests")
    return env


@pytest.fixture(scope="session")
def scaled():
    d = ScaleDeployment(scale_variables())
    d.remove_everything()  # what an interrupted earlier run may have left
    try:
        took = d.up()
        d.record("scale stack: up to every container healthy", f"{took:.1f} s")
        yield d
    finally:
        try:
            d.save_logs()
        finally:
            d.remove_everything()


@pytest.fixture(scope="session")
def public() -> Http:
    return Http(PUBLIC_URL)


@pytest.fixture
async def api():
    async with aiohttp.ClientSession() as http:
        yield Api(http, PUBLIC_URL)
