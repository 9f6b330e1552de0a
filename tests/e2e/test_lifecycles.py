"""Lifecycles carried by events, against the running stack: deleting a chatbot, deleting a
tenant, and erasing a visitor leave nothing of them in any of the six databases or on the
avatar volume. The databases are searched generically (every table with the column), so a
table added later is covered the day it is added."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from services.avatar.default_avatar import build_glb
from tests.e2e.test_chat_turn import wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")
TURN_EVENTS = ["ConversationStartedEvent", "VisitorMessageReceivedEvent", "AiReplyRequestedEvent",
               "AiReplyCompletedEvent", "AvatarAnimationSelectedEvent", "FeedbackGivenEvent", "HandoffRequestedEvent"]


async def _columns(conn, data_type: str | None = None, name: str | None = None) -> list[tuple[str, str]]:
    """(table, column) of every ordinary or partitioned table (not a partition: the parent
    covers it) with a column of this type or name."""
    rows = await conn.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = 'public'::regnamespace "
        "WHERE c.table_schema = 'public' AND NOT t.relispartition "
        "AND ($1::text IS NULL OR c.data_type = $1) AND ($2::text IS NULL OR c.column_name = $2) "
        "ORDER BY 1, 2", data_type, name)
    return [(r["table_name"], r["column_name"]) for r in rows]


async def leftovers(*, column_values: dict[str, list] | None = None, any_uuid: list | None = None,
                    any_text: list[str] | None = None) -> dict[str, int]:
    """Rows naming any of the values, per "service.table.column", in all six databases:
    ``column_values`` by column name (tenant_id -> [...]), ``any_uuid`` in any uuid column,
    ``any_text`` inside any json or text column."""
    found: dict[str, int] = {}
    for service in SERVICES:
        conn = await asyncpg.connect(os.environ[f"{service.upper()}_DATABASE_URL"])
        try:
            checks = []
            for column, values in (column_values or {}).items():
                checks += [(t, c, f"{c} = ANY($1::uuid[])", [uuid.UUID(str(v)) for v in values])
                           for t, c in await _columns(conn, name=column)]
            if any_uuid:
                checks += [(t, c, f"{c} = ANY($1::uuid[])", [uuid.UUID(str(v)) for v in any_uuid])
                           for t, c in await _columns(conn, data_type="uuid")]
            if any_text:
                for data_type in ("jsonb", "text"):
                    checks += [(t, c, f"{c}::text LIKE ANY($1::text[])", [f"%{v}%" for v in any_text])
                               for t, c in await _columns(conn, data_type=data_type)]
            for table, column, where, args in checks:
                count = await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE {where}', args)
                if count:
                    found[f"{service}.{table}.{column}"] = count
        finally:
            await conn.close()
    return found


async def nothing_left(what: str, timeout: float = 60, **kwargs) -> None:
    last: dict = {}

    async def clean():
        last.clear()
        last.update(await leftovers(**kwargs))
        return not last
    try:
        await wait_until(clean, timeout=timeout, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: still there: {last}") from None


async def _upload_avatar(api, key: str) -> dict:
    form = aiohttp.FormData()
    form.add_field("file", build_glb(), filename="robo.glb", content_type="model/gltf-binary")
    form.add_field("name", "Robo")
    status, avatar = await api.call("POST", "/api/v1/avatars", key=key, data=form)
    assert status == 201, avatar
    return avatar


async def _furnish(api, key: str, chatbot: dict) -> dict:
    """A chatbot with everything a tenant makes: a document (indexed), its own avatar, a
    conversation with a reply, a rating and a handoff. Returns the ids."""
    knowledge = f"/api/v1/chatbots/{chatbot['id']}/knowledge"
    status, document = await api.call("POST", knowledge + "/documents/text", key=key, json={
        "title": "Shipping", "text": "We ship to Canada in five working days. Delivery costs 5 euros."})
    assert status == 202, document

    async def indexed():
        status, body = await api.call("GET", f"{knowledge}/documents/{document['id']}", key=key)
        return body if body["status"] == "indexed" else None
    await wait_until(indexed, timeout=120, what="the document indexed")
    avatar = await _upload_avatar(api, key)
    status, _ = await api.call("PUT", f"/api/v1/chatbots/{chatbot['id']}/avatar", key=key,
                               json={"avatar_id": avatar["id"]})
    assert status == 200
    conv = await api.conversation(chatbot["embed_id"])
    assert (await api.say(chatbot["embed_id"], conv, "Do you ship to Canada?", "life-1"))[0] == 202

    async def answered():  # the tenant's transcript shows the animation the reply played
        status, transcript = await api.call("GET", f"/api/v1/conversations/{conv['conversation_id']}", key=key)
        messages = transcript["messages"]
        done = [m for m in messages if m["role"] == "assistant" and m["status"] == "completed" and m["animation"]]
        return messages if done else None
    messages = await wait_until(answered, timeout=60, what="the reply, animated")
    reply = next(m for m in messages if m["role"] == "assistant")
    base = f"/api/widget/v1/{chatbot['embed_id']}/conversations/{conv['conversation_id']}"
    status, _ = await api.call("POST", f"{base}/replies/{reply['id']}/feedback", key=conv["visitor_token"],
                               json={"rating": "down", "comment": "I wanted the price for Canada"})
    assert status == 202
    status, _ = await api.call("POST", f"{base}/handoff", key=conv["visitor_token"])
    assert status == 202

    async def recorded():  # analytics has every event of the turn before anything is deleted
        conn = await asyncpg.connect(os.environ["ANALYTICS_DATABASE_URL"])
        try:
            return await conn.fetchval(
                "SELECT count(DISTINCT event_type) = $2 FROM events WHERE conversation_id = $1 "
                "AND event_type = ANY($3::text[])", uuid.UUID(conv["conversation_id"]), len(TURN_EVENTS), TURN_EVENTS)
        finally:
            await conn.close()
    await wait_until(recorded, timeout=60, what="analytics recorded the whole turn")
    return {"document": document, "avatar": avatar, "conversation": conv, "messages": messages}


def _avatar_file(avatar_id: str) -> Path:
    return Path(os.environ["AVATAR_STORAGE_DIR"]) / f"{avatar_id}.glb"


async def test_deleting_a_chatbot_deletes_what_every_service_kept_of_it(api, stack, bot):
    key, chatbot = bot["key"], bot["chatbot"]
    made = await _furnish(api, key, chatbot)
    status, tenant = await api.call("GET", "/api/v1/tenant", key=key)
    assert (await api.call("DELETE", f"/api/v1/chatbots/{chatbot['id']}", key=key))[0] == 204

    await nothing_left("the deleted chatbot's data", column_values={
        "chatbot_id": [chatbot["id"]], "conversation_id": [made["conversation"]["conversation_id"]],
        "visitor_id": [made["conversation"]["visitor_id"]], "document_id": [made["document"]["id"]]},
        any_text=[chatbot["id"], chatbot["embed_id"]])
    # the avatar let the chatbot go by the event: deleting the avatar needs no workaround now
    assert (await api.call("DELETE", f"/api/v1/avatars/{made['avatar']['id']}", key=key))[0] == 204
    assert not _avatar_file(made["avatar"]["id"]).exists()
    # the documents no longer count against the plan: a tenant whose plan allows one document
    # can add one again
    status, _ = await api.call("PATCH", f"/api/v1/admin/tenants/{tenant['id']}", key=stack.admin_key,
                               json={"limits": {"max_documents": 1}})
    assert status == 200
    other = await api.chatbot(key, name="Next")
    status, body = await api.call("POST", f"/api/v1/chatbots/{other['id']}/knowledge/documents/text", key=key,
                                  json={"title": "Hours", "text": "We open at nine."})
    assert status == 202, body


async def test_deleting_a_tenant_erases_it_from_every_database_and_the_avatar_volume(api, stack):
    created = await api.tenant(stack.admin_key, "Leaving Ltd")
    tenant_id, key = created["tenant"]["id"], created["api_key"]["key"]
    chatbots = [await api.chatbot(key, name="Shop"), await api.chatbot(key, name="Support")]
    made = await _furnish(api, key, chatbots[0])
    spare_avatar = await _upload_avatar(api, key)  # an avatar no chatbot shows
    status, _ = await api.call("PUT", "/api/v1/provider-keys/openai", key=key, json={"api_key": "sk-leaving-1234567"})
    assert status == 200
    status, _ = await api.call("POST", "/api/v1/api-keys", key=key, json={"name": "second"})
    assert status == 201

    # the owner must confirm with the tenant's id or its exact name
    status, body = await api.call("DELETE", "/api/v1/tenant", key=key, json={"confirm": "Leaving"})
    assert status == 409 and body["error"]["code"] == "confirmation_mismatch"
    assert (await api.call("GET", "/api/v1/tenant", key=key))[0] == 200
    status, _ = await api.call("DELETE", "/api/v1/tenant", key=key, json={"confirm": "Leaving Ltd"})
    assert status == 204
    assert (await api.call("GET", "/api/v1/tenant", key=key))[0] == 401  # the keys stop at once
    assert (await api.call("GET", f"/api/widget/v1/{chatbots[0]['embed_id']}/config"))[0] == 404

    await nothing_left("the deleted tenant's data", timeout=90, column_values={
        "tenant_id": [tenant_id], "chatbot_id": [c["id"] for c in chatbots],
        "conversation_id": [made["conversation"]["conversation_id"]]})
    for avatar in (made["avatar"], spare_avatar):
        assert not _avatar_file(avatar["id"]).exists()


async def test_the_admin_deletes_a_tenant(api, stack):
    created = await api.tenant(stack.admin_key, "Closed by admin")
    tenant_id, key = created["tenant"]["id"], created["api_key"]["key"]
    chatbot = await api.chatbot(key)
    avatar = await _upload_avatar(api, key)
    assert (await api.call("DELETE", f"/api/v1/admin/tenants/{tenant_id}", key=key))[0] == 401
    assert (await api.call("DELETE", f"/api/v1/admin/tenants/{tenant_id}", key=stack.admin_key))[0] == 204
    assert (await api.call("DELETE", f"/api/v1/admin/tenants/{tenant_id}", key=stack.admin_key))[0] == 404
    assert (await api.call("GET", "/api/v1/chatbots", key=key))[0] == 401
    await nothing_left("the tenant the admin deleted", column_values={
        "tenant_id": [tenant_id], "chatbot_id": [chatbot["id"]]})
    assert not _avatar_file(avatar["id"]).exists()


async def test_a_visitor_s_data_is_exported_then_erased_everywhere(api, stack, bot):
    key, chatbot = bot["key"], bot["chatbot"]
    made = await _furnish(api, key, chatbot)
    conv = made["conversation"]
    bystander = await api.conversation(chatbot["embed_id"])  # another visitor of the same chatbot
    assert (await api.say(chatbot["embed_id"], bystander, "What are your opening hours?", "by-1"))[0] == 202
    base = f"/api/v1/chatbots/{chatbot['id']}/visitors/{conv['visitor_id']}"

    status, export = await api.call("GET", f"{base}/export", key=key)
    assert status == 200, export
    assert export["visitor"]["id"] == conv["visitor_id"]
    [conversation] = export["conversations"]
    assert conversation["id"] == conv["conversation_id"] and conversation["handoff_requested"] is True
    texts = [m["text"] for m in conversation["messages"]]
    assert texts[0] == "Do you ship to Canada?" and "Canada" in texts[1]
    rated = [m for m in conversation["messages"] if m["rating"]]
    assert rated and rated[0]["rating"] == "down" and rated[0]["rating_comment"] == "I wanted the price for Canada"
    kinds = {e["event_type"] for e in export["analytics_events"]}
    assert {"ConversationStartedEvent", "AiReplyRequestedEvent", "AiReplyCompletedEvent", "FeedbackGivenEvent",
            "HandoffRequestedEvent"} <= kinds
    assert all(e["payload"]["conversation_id"] == conv["conversation_id"] for e in export["analytics_events"])
    # another tenant, or an unknown visitor: 404
    other = await api.tenant(stack.admin_key, "Nosy")
    assert (await api.call("GET", f"{base}/export", key=other["api_key"]["key"]))[0] == 404
    assert (await api.call("GET", f"/api/v1/chatbots/{chatbot['id']}/visitors/{uuid.uuid4()}/export",
                           key=key))[0] == 404

    status, body = await api.call("DELETE", base, key=key)
    assert status == 202 and body["status"] == "erasing"
    # the visitor's token stops at once
    status, _ = await api.call("GET", f"/api/widget/v1/{chatbot['embed_id']}/conversations/"
                                      f"{conv['conversation_id']}/messages", key=conv["visitor_token"])
    assert status == 401
    ids = [conv["visitor_id"], conv["conversation_id"], *(m["id"] for m in made["messages"])]
    await nothing_left("the erased visitor's data", any_uuid=ids, any_text=ids)
    assert (await api.call("GET", f"{base}/export", key=key))[0] == 404
    # the other visitor of the chatbot keeps everything
    assert [m["role"] for m in await api.transcript(chatbot["embed_id"], bystander)][0] == "visitor"
