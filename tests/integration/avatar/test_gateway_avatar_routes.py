"""The tenant-facing avatar routes and the public model URL, through a real gateway in front of a
real avatar service (each with its own throwaway database) on loopback."""
from __future__ import annotations

import asyncio
import hashlib
import uuid

import aiohttp
import pytest

from common.bus import Bus
from common.db import create_pool
from services.avatar.app import create_app as create_avatar_app
from services.avatar.behaviours import BEHAVIOURS
from services.avatar.default_avatar import build_glb
from services.avatar.service import DEFAULT_AVATAR_ID
from services.gateway.app import MIGRATIONS as GATEWAY_MIGRATIONS
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import Settings as GatewaySettings
from tests.conftest import require_env, scratch_database


@pytest.fixture
async def avatar_server(settings, pool, bus, aiohttp_server):
    return await aiohttp_server(create_avatar_app(settings, pool=pool, bus=bus))


@pytest.fixture
async def gateway_pool():
    with scratch_database("gw") as url:  # the gateway's own database, beside the avatar's
        pool = await create_pool(url, migrations=GATEWAY_MIGRATIONS)
        yield pool
        await pool.close()


@pytest.fixture
async def gateway_bus(scratch_vhost):
    bus = Bus(scratch_vhost, "gateway")
    await bus.connect()
    yield bus
    await bus.close()


@pytest.fixture
async def gateway(avatar_server, gateway_pool, gateway_bus, monkeypatch, aiohttp_client):
    monkeypatch.setenv("AVATAR_URL", str(avatar_server.make_url("")).rstrip("/"))
    settings = GatewaySettings(database_url="postgresql://unused", admin_api_key=require_env("ADMIN_API_KEY"),
                               visitor_token_secret=require_env("VISITOR_TOKEN_SECRET"))
    app = create_gateway(settings, pool=gateway_pool, bus=gateway_bus)
    return await aiohttp_client(app)


async def new_tenant(gateway) -> dict:
    resp = await gateway.post("/api/v1/admin/tenants", json={"name": f"Acme {uuid.uuid4().hex[:6]}"},
                              headers={"Authorization": f"Bearer {require_env('ADMIN_API_KEY')}"})
    assert resp.status == 201, await resp.text()
    key = (await resp.json())["api_key"]["key"]
    headers = {"Authorization": f"Bearer {key}"}
    resp = await gateway.post("/api/v1/chatbots", json={"name": "Helper"}, headers=headers)
    assert resp.status == 201, await resp.text()
    return {"headers": headers, "chatbot": await resp.json()}


def form(data: bytes) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("name", "Robo")
    body.add_field("file", data, filename="robo.glb", content_type="model/gltf-binary")
    return body


async def test_a_tenant_uploads_maps_and_sets_an_avatar_and_the_widget_loads_it(gateway, storage_dir):
    tenant = await new_tenant(gateway)
    headers, chatbot = tenant["headers"], tenant["chatbot"]
    data = build_glb()

    resp = await gateway.get("/api/v1/avatar-behaviours", headers=headers)
    assert [b["behaviour"] for b in (await resp.json())["data"]] == list(BEHAVIOURS)

    resp = await gateway.post("/api/v1/avatars", data=form(data), headers=headers)
    assert resp.status == 201, await resp.text()
    avatar = await resp.json()
    assert avatar["sha256"] == hashlib.sha256(data).hexdigest()
    assert [c["name"] for c in avatar["clips"]] == list(BEHAVIOURS)

    resp = await gateway.get("/api/v1/avatars", headers=headers)
    assert [a["id"] for a in (await resp.json())["data"]] == [str(DEFAULT_AVATAR_ID), avatar["id"]]
    resp = await gateway.get(f"/api/v1/avatars/{avatar['id']}", headers=headers)
    assert resp.status == 200 and (await resp.json())["size_bytes"] == len(data)

    resp = await gateway.put(f"/api/v1/avatars/{avatar['id']}/animation-map", headers=headers,
                             json={"animation_map": {"idle": "idle", "greet": "missing_clip"}})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "unknown_clip"
    resp = await gateway.put(f"/api/v1/avatars/{avatar['id']}/animation-map", headers=headers,
                             json={"animation_map": {"idle": "idle", "greet": "celebrate"}})
    assert resp.status == 200 and (await resp.json())["animation_map"]["greet"] == "celebrate"

    resp = await gateway.put(f"/api/v1/chatbots/{chatbot['id']}/avatar", headers=headers,
                             json={"avatar_id": avatar["id"]})
    assert resp.status == 200, await resp.text()
    # the avatar service alone keeps the choice
    resp = await gateway.get(f"/api/v1/chatbots/{chatbot['id']}/avatar", headers=headers)
    widget = await resp.json()
    assert widget["avatar_id"] == avatar["id"]
    assert widget["model_url"] == f"/api/widget/v1/avatars/{avatar['id']}/model.glb"
    assert widget["animation_map"]["greet"] == "celebrate" and widget["animation_map"]["talk"] == "idle"
    resp = await gateway.get(f"/api/v1/chatbots/{chatbot['id']}", headers=headers)
    assert "avatar_id" not in await resp.json()

    # the widget loads the model without a key, from any origin, cached, in ranges
    resp = await gateway.get(widget["model_url"])
    assert resp.status == 200 and await resp.read() == data
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Accept-Ranges"] == "bytes"
    etag = resp.headers["ETag"]
    resp = await gateway.get(widget["model_url"], headers={"Range": "bytes=12-19"})
    assert resp.status == 206 and await resp.read() == data[12:20]
    assert resp.headers["Content-Range"] == f"bytes 12-19/{len(data)}"
    resp = await gateway.get(widget["model_url"], headers={"If-None-Match": etag})
    assert resp.status == 304
    resp = await gateway.options(widget["model_url"])
    assert resp.status == 204 and "Range" in resp.headers["Access-Control-Allow-Headers"]
    resp = await gateway.get("/api/widget/v1/avatars/default/model.glb")
    assert resp.status == 200 and await resp.read() == data

    # still in use: not deleted; back on the default avatar: deleted, file and all
    resp = await gateway.delete(f"/api/v1/avatars/{avatar['id']}", headers=headers)
    assert resp.status == 409
    await gateway.put(f"/api/v1/chatbots/{chatbot['id']}/avatar", headers=headers, json={"avatar_id": None})
    resp = await gateway.get(f"/api/v1/chatbots/{chatbot['id']}/avatar", headers=headers)
    assert (await resp.json())["default"] is True
    assert (await gateway.delete(f"/api/v1/avatars/{avatar['id']}", headers=headers)).status == 204
    assert (await gateway.get(widget["model_url"])).status == 404
    assert sorted(p.name for p in storage_dir.iterdir()) == ["default.glb"]


async def test_tenants_only_reach_their_own_avatars_and_chatbots(gateway):
    ours, theirs = await new_tenant(gateway), await new_tenant(gateway)
    resp = await gateway.post("/api/v1/avatars", data=form(build_glb()), headers=theirs["headers"])
    their_avatar = await resp.json()
    assert (await gateway.get(f"/api/v1/avatars/{their_avatar['id']}", headers=ours["headers"])).status == 404
    assert (await gateway.delete(f"/api/v1/avatars/{their_avatar['id']}", headers=ours["headers"])).status == 404
    resp = await gateway.put(f"/api/v1/chatbots/{ours['chatbot']['id']}/avatar", headers=ours["headers"],
                             json={"avatar_id": their_avatar["id"]})
    assert resp.status == 404
    resp = await gateway.put(f"/api/v1/chatbots/{theirs['chatbot']['id']}/avatar", headers=ours["headers"],
                             json={"avatar_id": None})
    assert resp.status == 404
    assert (await gateway.get("/api/v1/avatars")).status == 401


async def test_bad_uploads_through_the_gateway_get_a_clear_4xx_and_store_nothing(gateway, pool, storage_dir):
    tenant = await new_tenant(gateway)
    for data, status, code in ((b"not a model at all", 415, "not_gltf"), (build_glb()[:-1000], 422, "truncated")):
        resp = await gateway.post("/api/v1/avatars", data=form(data), headers=tenant["headers"])
        assert resp.status == status and (await resp.json())["error"]["code"] == code
    resp = await gateway.post("/api/v1/avatars", json={"file": "x"}, headers=tenant["headers"])
    assert resp.status == 415
    assert await pool.fetchval("SELECT count(*) FROM avatars") == 0
    assert sorted(p.name for p in storage_dir.iterdir()) == ["default.glb"]


async def test_a_deleted_chatbot_does_not_keep_its_avatar_from_being_deleted(gateway):
    tenant = await new_tenant(gateway)
    headers, chatbot = tenant["headers"], tenant["chatbot"]
    avatar = await (await gateway.post("/api/v1/avatars", data=form(build_glb()), headers=headers)).json()
    resp = await gateway.put(f"/api/v1/chatbots/{chatbot['id']}/avatar", headers=headers,
                             json={"avatar_id": avatar["id"]})
    assert resp.status == 200
    # the avatar service lets the chatbot go when ChatbotDeletedEvent reaches it (the gateway's
    # outbox publishes it): until then the avatar is still in use (409), never lost
    assert (await gateway.delete(f"/api/v1/chatbots/{chatbot['id']}", headers=headers)).status == 204
    for _ in range(200):
        status = (await gateway.delete(f"/api/v1/avatars/{avatar['id']}", headers=headers)).status
        if status != 409:
            break
        await asyncio.sleep(0.05)
    assert status == 204
    resp = await gateway.get(f"/api/v1/avatars/{avatar['id']}", headers=headers)
    assert resp.status == 404
