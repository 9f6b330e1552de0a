"""The avatar service's internal API against real Postgres and RabbitMQ."""
from __future__ import annotations

import hashlib
import uuid

import aiohttp
import pygltflib
import pytest

from common import events as ev
from services.avatar import handlers
from services.avatar.behaviours import BEHAVIOURS
from services.avatar.default_avatar import build_glb
from services.avatar.service import DEFAULT_AVATAR_ID

TENANT = uuid.uuid4()
OTHER_TENANT = uuid.uuid4()
Q = {"tenant_id": str(TENANT)}


def glb_with_clips(names: list[str]) -> bytes:
    """A model whose clips are named like a Quaternius pack's."""
    gltf = pygltflib.GLTF2.load_from_bytes(build_glb())
    gltf.animations = gltf.animations[:len(names)]
    for animation, name in zip(gltf.animations, names):
        animation.name = name
    return b"".join(gltf.save_to_bytes())


def glb_without_mesh() -> bytes:
    gltf = pygltflib.GLTF2.load_from_bytes(build_glb())
    for node in gltf.nodes:
        node.mesh = None
    gltf.meshes = []
    return b"".join(gltf.save_to_bytes())


def form(data: bytes, name: str | None = "Robo", filename: str = "robo.glb") -> aiohttp.FormData:
    body = aiohttp.FormData()
    if name is not None:
        body.add_field("name", name)
    body.add_field("file", data, filename=filename, content_type="model/gltf-binary")
    return body


async def upload(client, data: bytes, **kwargs):
    return await client.post("/internal/avatars", params=Q, data=form(data, **kwargs))


async def stored(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM avatars")


def files(storage_dir) -> list[str]:
    return sorted(p.name for p in storage_dir.iterdir())


async def test_the_default_avatar_is_generated_at_start_up_and_listed(client, storage_dir):
    assert files(storage_dir) == ["default.glb"]
    resp = await client.get("/internal/avatars", params=Q)
    assert resp.status == 200
    [default] = (await resp.json())["data"]
    assert default["id"] == str(DEFAULT_AVATAR_ID) and default["default"] is True
    assert [c["name"] for c in default["clips"]] == list(BEHAVIOURS)
    assert default["animation_map"] == {b: b for b in BEHAVIOURS}
    resp = await client.get("/internal/avatars/library")
    assert [b["behaviour"] for b in (await resp.json())["data"]] == list(BEHAVIOURS)


async def test_upload_list_get_map_and_delete(client, pool, storage_dir):
    data = glb_with_clips(["Idle", "Wave", "Yes", "No", "ThumbsUp", "Dance", "Death"])
    resp = await upload(client, data)
    assert resp.status == 201, await resp.text()
    avatar = await resp.json()
    avatar_id = avatar["id"]
    assert avatar["name"] == "Robo" and avatar["filename"] == "robo.glb"
    assert avatar["sha256"] == hashlib.sha256(data).hexdigest() and avatar["size_bytes"] == len(data)
    assert [c["name"] for c in avatar["clips"]] == ["Idle", "Wave", "Yes", "No", "ThumbsUp", "Dance", "Death"]
    assert avatar["triangles"] > 0 and avatar["nodes"] > 0
    assert avatar["model_url"] == f"/api/widget/v1/avatars/{avatar_id}/model.glb"
    guessed = avatar["animation_map"]
    assert guessed["idle"] == "Idle" and guessed["greet"] == "Wave" and guessed["nod"] == "Yes"
    assert guessed["thumbs_up"] == "ThumbsUp" and guessed["celebrate"] == "Dance"
    assert f"{avatar_id}.glb" in files(storage_dir)

    listed = (await (await client.get("/internal/avatars", params=Q)).json())["data"]
    assert [a["id"] for a in listed] == [str(DEFAULT_AVATAR_ID), avatar_id]
    other = await client.get("/internal/avatars", params={"tenant_id": str(OTHER_TENANT)})
    assert [a["id"] for a in (await other.json())["data"]] == [str(DEFAULT_AVATAR_ID)]
    resp = await client.get(f"/internal/avatars/{avatar_id}", params={"tenant_id": str(OTHER_TENANT)})
    assert resp.status == 404

    resp = await client.put(f"/internal/avatars/{avatar_id}/animation-map", params=Q,
                            json={"animation_map": {"idle": "Idle", "happy": "Dance", "sad": "Death"}})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["animation_map"] == {"idle": "Idle", "happy": "Dance", "sad": "Death"}

    resp = await client.get(f"/internal/avatars/{avatar_id}", params=Q)
    assert (await resp.json())["animation_map"]["sad"] == "Death"

    resp = await client.delete(f"/internal/avatars/{avatar_id}", params=Q)
    assert resp.status == 204
    assert (await client.get(f"/internal/avatars/{avatar_id}", params=Q)).status == 404
    assert files(storage_dir) == ["default.glb"] and await stored(pool) == 0


async def test_an_animation_map_naming_missing_clips_is_refused_and_changes_nothing(client):
    avatar = await (await upload(client, glb_with_clips(["Idle", "Wave"]))).json()
    url = f"/internal/avatars/{avatar['id']}/animation-map"
    resp = await client.put(url, params=Q, json={"animation_map": {"idle": "Idle", "greet": "Hello"}})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "unknown_clip" and error["details"]["missing"] == {"greet": "Hello"}
    assert error["details"]["clips"] == ["Idle", "Wave"]
    resp = await client.put(url, params=Q, json={"animation_map": {"dance_party": "Wave"}})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "unknown_behaviour"
    resp = await client.get(f"/internal/avatars/{avatar['id']}", params=Q)
    assert (await resp.json())["animation_map"] == avatar["animation_map"]
    # null goes back to the guess
    resp = await client.put(url, params=Q, json={"animation_map": {"idle": "Wave"}})
    assert (await resp.json())["animation_map"] == {"idle": "Wave"}
    resp = await client.put(url, params=Q, json={"animation_map": None})
    assert (await resp.json())["animation_map"] == avatar["animation_map"]


@pytest.mark.parametrize("data,status,code", [
    (b"this is not a model", 415, "not_gltf"),
    (build_glb()[:50_000], 422, "truncated"),
    (b"glTF" + b"\0" * 2 * 1024 * 1024, 413, "too_large"),
    (glb_without_mesh(), 422, "no_mesh"),
])
async def test_bad_uploads_are_refused_and_store_nothing(client, pool, storage_dir, data, status, code):
    resp = await upload(client, data)
    assert resp.status == status, await resp.text()
    assert (await resp.json())["error"]["code"] == code
    assert await stored(pool) == 0 and files(storage_dir) == ["default.glb"]


async def test_malformed_upload_requests_are_refused(client, pool):
    resp = await client.post("/internal/avatars", params=Q, json={"file": "x"})
    assert resp.status == 415
    body = aiohttp.FormData(default_to_multipart=True)
    body.add_field("name", "no file")
    resp = await client.post("/internal/avatars", params=Q, data=body)
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "missing_file"
    resp = await client.post("/internal/avatars", data=form(build_glb()))
    assert resp.status == 400
    assert await stored(pool) == 0


async def test_a_tenant_cannot_keep_more_than_its_quota(client, pool):
    data = glb_with_clips(["Idle"])
    for _ in range(5):
        assert (await upload(client, data)).status == 201
    resp = await upload(client, data)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "too_many_avatars"
    assert await stored(pool) == 5


async def test_models_are_served_with_etag_cache_headers_ranges_and_cors(client):
    data = glb_with_clips(["Idle", "Wave"])
    avatar = await (await upload(client, data)).json()
    url = f"/internal/avatars/{avatar['id']}/model.glb"

    resp = await client.get(url)
    assert resp.status == 200 and await resp.read() == data
    etag = resp.headers["ETag"]
    assert etag == f'"{hashlib.sha256(data).hexdigest()}"'
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert resp.headers["Content-Type"] == "model/gltf-binary"

    resp = await client.get(url, headers={"Range": "bytes=0-11"})
    assert resp.status == 206 and await resp.read() == data[:12]
    assert resp.headers["Content-Range"] == f"bytes 0-11/{len(data)}"
    resp = await client.get(url, headers={"Range": "bytes=-100"})
    assert resp.status == 206 and await resp.read() == data[-100:]
    resp = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{len(data)}"
    resp = await client.get(url, headers={"Range": "bytes=0-11", "If-Range": '"stale"'})
    assert resp.status == 200 and await resp.read() == data

    resp = await client.get(url, headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag and await resp.read() == b""

    resp = await client.head(url)
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)

    assert (await client.get(f"/internal/avatars/{uuid.uuid4()}/model.glb")).status == 404
    resp = await client.get(url, params={"tenant_id": str(OTHER_TENANT)})
    assert resp.status == 404


async def test_the_default_model_is_served_too(client):
    data = build_glb()
    for path in ("/internal/avatars/default/model.glb", f"/internal/avatars/{DEFAULT_AVATAR_ID}/model.glb"):
        resp = await client.get(path)
        assert resp.status == 200 and await resp.read() == data
        assert resp.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'


async def test_chatbot_avatar_and_its_own_map(client):
    chatbot = uuid.uuid4()
    resp = await client.get(f"/internal/chatbots/{chatbot}/avatar", params=Q)
    assert (await resp.json())["avatar_id"] == str(DEFAULT_AVATAR_ID)

    avatar = await (await upload(client, glb_with_clips(["Idle", "Wave", "Talking"]))).json()
    resp = await client.put(f"/internal/chatbots/{chatbot}/avatar", params=Q, json={"avatar_id": avatar["id"]})
    assert resp.status == 200
    body = await resp.json()
    assert body["avatar_id"] == avatar["id"] and body["animation_map"]["talk"] == "Talking"
    assert body["model_url"] == avatar["model_url"]

    resp = await client.put(f"/internal/avatars/{avatar['id']}/animation-map", params=Q,
                            json={"chatbot_id": str(chatbot), "animation_map": {"talk": "Wave"}})
    assert resp.status == 200
    assert (await resp.json())["chatbot_animation_maps"] == {str(chatbot): {"talk": "Wave"}}
    resp = await client.get(f"/internal/chatbots/{chatbot}/avatar", params=Q)
    assert (await resp.json())["animation_map"]["talk"] == "Wave"

    # in use: it cannot be deleted until the chatbot shows another avatar
    resp = await client.delete(f"/internal/avatars/{avatar['id']}", params=Q)
    assert resp.status == 409 and (await resp.json())["error"]["details"]["chatbot_ids"] == [str(chatbot)]
    resp = await client.put(f"/internal/chatbots/{chatbot}/avatar", params=Q, json={"avatar_id": None})
    assert (await resp.json())["default"] is True
    assert (await client.delete(f"/internal/avatars/{avatar['id']}", params=Q)).status == 204

    # another tenant's avatar, or another tenant's chatbot, cannot be used
    theirs = await (await client.post("/internal/avatars", params={"tenant_id": str(OTHER_TENANT)},
                                      data=form(glb_with_clips(["Idle"])))).json()
    resp = await client.put(f"/internal/chatbots/{chatbot}/avatar", params=Q, json={"avatar_id": theirs["id"]})
    assert resp.status == 404
    resp = await client.put(f"/internal/chatbots/{chatbot}/avatar", params={"tenant_id": str(OTHER_TENANT)},
                            json={"avatar_id": theirs["id"]})
    assert resp.status == 404


async def test_the_default_avatar_cannot_be_deleted_or_remapped(client):
    assert (await client.delete("/internal/avatars/default", params=Q)).status == 403
    resp = await client.put("/internal/avatars/default/animation-map", params=Q,
                            json={"animation_map": {"idle": "talk"}})
    assert resp.status == 403


def completed(chatbot_id: uuid.UUID, **kwargs) -> ev.AiReplyCompletedEvent:
    return ev.AiReplyCompletedEvent(
        tenant_id=TENANT, chatbot_id=chatbot_id, conversation_id=uuid.uuid4(), reply_id=uuid.uuid4(), reply_seq=1,
        visitor_message_id=uuid.uuid4(), text="Hello there!", provider="local", model="local-extractive", **kwargs)


async def outbox_selection(pool, reply_id: uuid.UUID) -> dict:
    row = await pool.fetchrow("SELECT body FROM outbox WHERE event_type = 'AvatarAnimationSelectedEvent' "
                              "AND body->>'reply_id' = $1", str(reply_id))
    if row is None:  # the relay already published it; the selection table keeps what was chosen
        row = await pool.fetchrow("SELECT behaviour, clip FROM animation_selections WHERE reply_id = $1", reply_id)
        return dict(row)
    return row["body"]


async def test_a_reply_plays_the_clip_its_chatbot_s_avatar_maps_its_behaviour_to(client, pool):
    chatbot = uuid.uuid4()
    # the default avatar: the clip is the behaviour
    event = completed(chatbot, intent="greeting")
    await handlers.on_ai_reply_completed(event, deps=handlers.Deps(pool=pool, store=None))
    selection = await outbox_selection(pool, event.reply_id)
    assert (selection["behaviour"], selection["clip"]) == ("greet", "greet")

    avatar = await (await upload(client, glb_with_clips(["Idle", "Wave", "Yes"]))).json()
    await client.put(f"/internal/chatbots/{chatbot}/avatar", params=Q, json={"avatar_id": avatar["id"]})
    event = completed(chatbot, intent="goodbye")
    await handlers.on_ai_reply_completed(event, deps=handlers.Deps(pool=pool, store=None))
    selection = await outbox_selection(pool, event.reply_id)
    assert (selection["behaviour"], selection["clip"]) == ("goodbye", "Wave")
    # a redelivery is harmless
    await handlers.on_ai_reply_completed(event, deps=handlers.Deps(pool=pool, store=None))
    assert await pool.fetchval("SELECT count(*) FROM animation_selections WHERE reply_id = $1", event.reply_id) == 1

    event = completed(chatbot, intent="question", sentiment=0.9, answered_from_knowledge=True)
    await handlers.on_ai_reply_completed(event, deps=handlers.Deps(pool=pool, store=None))
    selection = await outbox_selection(pool, event.reply_id)
    assert (selection["behaviour"], selection["clip"]) == ("happy", "Yes")  # happy -> ... -> nod's clip
