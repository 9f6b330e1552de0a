"""The knowledge service against real Postgres (pgvector) and a real RabbitMQ.

One throwaway database and one throwaway vhost serve the whole module set (each test uses
its own tenant and chatbot ids, so tests never see each other's documents); every test runs
its own app, with the service's real consumer, outbox relay and worker process.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiohttp import web

from services.knowledge.app import create_app
from services.knowledge.embeddings import LocalEmbedder
from services.knowledge.settings import Settings
from tests.conftest import scratch_database, scratch_vhost_url


@pytest.fixture(scope="session")
def knowledge_db():
    with scratch_database("kn_test") as url:
        yield url


@pytest.fixture(scope="session")
def knowledge_vhost():
    with scratch_vhost_url("kn_test") as url:
        yield url


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    """The real offline embedder, loaded once for every test."""
    made = LocalEmbedder()
    yield made
    made.close()


@pytest.fixture
def knowledge_settings(knowledge_db, knowledge_vhost) -> Settings:
    return Settings(KNOWLEDGE_DATABASE_URL=knowledge_db, AMQP_URL=knowledge_vhost,
                    KNOWLEDGE_FETCH_ALLOW_NETWORKS=["127.0.0.0/8"], KNOWLEDGE_FETCH_TIMEOUT=5,
                    KNOWLEDGE_EMBED_BATCH=8, BUS_RETRY_DELAY_MS=100, SHUTDOWN_TIMEOUT=5)


@pytest.fixture
async def knowledge(aiohttp_client, knowledge_settings, embedder):
    """A running knowledge service (test client) and a fresh tenant/chatbot for this test."""
    app = create_app(knowledge_settings, local_embedder=embedder)
    client = await aiohttp_client(app)
    return KnowledgeClient(client, uuid.uuid4(), uuid.uuid4())


class KnowledgeClient:
    def __init__(self, client, tenant_id: uuid.UUID, chatbot_id: uuid.UUID):
        self.client = client
        self.tenant_id = tenant_id
        self.chatbot_id = chatbot_id

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    @property
    def prefix(self) -> str:
        return f"/internal/tenants/{self.tenant_id}/chatbots/{self.chatbot_id}"

    async def upload(self, name: str, data: bytes, content_type: str = "application/octet-stream",
                     title: str | None = None, expect: int = 202) -> dict:
        form = make_form(name, data, content_type, title)
        resp = await self.client.post(self.prefix + "/documents", data=form)
        body = await resp.json()
        assert resp.status == expect, body
        return body

    async def call(self, method: str, path: str, expect: int = 200, **kwargs) -> dict:
        resp = await self.client.request(method, self.prefix + path, **kwargs)
        body = await resp.json()
        assert resp.status == expect, body
        return body

    async def document(self, document_id: str) -> dict:
        return await self.call("GET", f"/documents/{document_id}")

    async def wait_status(self, document_id: str, statuses=("indexed", "failed"), timeout: float = 30.0) -> dict:
        """Poll the document until it reaches one of ``statuses`` (no fixed sleeps)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            document = await self.document(document_id)
            if document["status"] in statuses:
                return document
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"document stayed {document['status']}: {document}")
            await asyncio.sleep(0.05)

    async def search(self, query: str, **kwargs) -> dict:
        return await self.call("POST", "/search", json={"query": query, **kwargs})


def make_form(name: str, data: bytes, content_type: str, title: str | None = None):
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    if title is not None:
        form.add_field("title", title)
    return form


async def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
