"""Request bodies as slow or split networks deliver them, and as attackers trickle them."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

import pytest

from tests.hostile.conftest import error_of
from tests.hostile.inputs import split_http_request

pytestmark = pytest.mark.e2e


async def send(base: str, first: bytes, rest: bytes, *, gap_s: float = 0.3) -> tuple[int, dict]:
    """Two TCP writes with a pause between them (a slow mobile link, a proxy's segments)."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(first)
        await writer.drain()
        await asyncio.sleep(gap_s)  # the pause is the input: the body arrives in two pieces
        writer.write(rest)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"transfer-encoding: chunked" in head.lower():
        size, _, rest_of = body.partition(b"\r\n")
        body = rest_of[:int(size, 16)]
    return status, json.loads(body)


async def test_a_json_body_split_over_two_tcp_writes_is_read_whole(api, stack, watch):
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    payload = json.dumps({"name": "Split", "persona": {"system_prompt": "x" * 3000}}).encode()
    assert len(payload) > 3000
    first, rest = split_http_request("/api/v1/chatbots", payload, urlsplit(stack.gateway).netloc,
                                     extra=f"Authorization: Bearer {key}\r\n")
    async with watch("body:split-over-two-writes") as measured:
        status, body = await send(stack.gateway, first, rest)
    assert status == 201 and body["name"] == "Split" and len(body["persona"]["system_prompt"]) == 3000, body
    measured.check()
    # and past the cap, however it is split, a 413
    big = json.dumps({"name": "x" * 300_000}).encode()
    first, rest = split_http_request("/api/v1/chatbots", big, urlsplit(stack.gateway).netloc,
                                     extra=f"Authorization: Bearer {key}\r\n")
    status, body = await send(stack.gateway, first, rest)
    assert status == 413 and error_of(body)["code"] == "payload_too_large"


async def test_a_long_text_document_fits_the_body_cap_its_model_allows(api, stack):
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    bot = await api.chatbot(key)
    # 300,000 characters (the body is over 256 KiB, the JSON default) in an escaped spelling;
    # all inside a script, so the document fails at once instead of keeping the embedder busy
    text = "<script>" + "é" * 300_000 + "</script>"
    status, body = await api.call("POST", f"/api/v1/chatbots/{bot['id']}/knowledge/documents/text", key=key,
                                  data=json.dumps({"text": text, "title": "Long", "format": "html"}).encode(),
                                  headers={"Content-Type": "application/json"})
    assert status == 202 and body["size_bytes"] == len(text.encode()), body
    status, body = await api.call("POST", f"/api/v1/chatbots/{bot['id']}/knowledge/documents/text", key=key,
                                  json={"text": "x" * 1_000_001})
    assert status == 422 and error_of(body)["code"] == "validation_error"


async def test_trickled_bodies_are_cut_off_and_others_are_served(api, stack, watch, limited_gateway):
    """A hundred connections each sending a body a byte a second (slowloris): the gateway's
    body deadline (3 s here, BODY_TIMEOUT_SECONDS) answers each with a 408."""
    tenant = await api.tenant(stack.admin_key)
    key = tenant["api_key"]["key"]
    url = urlsplit(limited_gateway)
    payload = json.dumps({"name": "slow"}).encode() + b" " * 200

    async def trickle() -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        head, _ = split_http_request("/api/v1/chatbots", payload, url.netloc,
                                     extra=f"Authorization: Bearer {key}\r\n")
        writer.write(head[:head.index(b"\r\n\r\n") + 4])
        try:
            for byte in payload:
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    # a byte a second, until the server answers
                    raw = await asyncio.wait_for(reader.read(65536), 1.0)
                except TimeoutError:
                    continue
                while b"\r\n\r\n" not in raw:
                    raw += await asyncio.wait_for(reader.read(65536), 10)
                head, _, body = raw.partition(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:")))
                while len(body) < length:
                    body += await asyncio.wait_for(reader.read(65536), 10)
                return int(head.split()[1]), json.loads(body)
        finally:
            writer.close()
        return 0, {}

    async with watch("body:100-trickled", gateway=limited_gateway) as measured:
        results = await asyncio.gather(*(trickle() for _ in range(100)))
    assert all(status == 408 and error_of(body)["code"] == "body_timeout" for status, body in results), results[:3]
    measured.check()
