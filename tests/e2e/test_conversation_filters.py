"""What a tenant's team filters conversations by, and what a transcript tells them about each
reply: the console's conversations page reads exactly these."""
from __future__ import annotations

from tests.e2e.test_chat_turn import wait_until


async def _answered(api, embed: str, conv: dict, text: str, client_id: str) -> dict:
    status, body = await api.say(embed, conv, text, client_id)
    assert status == 202, body

    async def reply():
        replies = [m for m in await api.transcript(embed, conv) if m["role"] == "assistant"]
        return replies[0] if replies and replies[0]["status"] in ("completed", "failed") else None
    return await wait_until(reply, timeout=60, what="the reply")


async def test_conversations_filter_by_chatbot_handoff_and_rating_and_transcripts_carry_cost_and_rating(api, stack):
    tenant = await api.tenant(stack.admin_key, "Filters Ltd")
    key = tenant["api_key"]["key"]
    shop, help_desk = await api.chatbot(key, name="Shop"), await api.chatbot(key, name="Help desk")
    rated, handed, other = (await api.conversation(shop["embed_id"]), await api.conversation(shop["embed_id"]),
                            await api.conversation(help_desk["embed_id"]))
    reply = await _answered(api, shop["embed_id"], rated, "Do you ship to Canada?", "r1")
    await _answered(api, help_desk["embed_id"], other, "Hello?", "o1")
    base = f"/api/widget/v1/{shop['embed_id']}/conversations"
    status, _ = await api.call("POST", f"{base}/{rated['conversation_id']}/replies/{reply['id']}/feedback",
                               key=rated["visitor_token"], json={"rating": "down", "comment": "too vague"})
    assert status == 202
    status, _ = await api.call("POST", f"{base}/{handed['conversation_id']}/handoff", key=handed["visitor_token"])
    assert status == 202

    async def ids(path: str, **params) -> set[str] | None:
        status, page = await api.call("GET", path, key=key, params=params)
        assert status == 200, page
        return {c["id"] for c in page["data"]}

    async def rating_and_handoff_stored():
        return (await ids("/api/v1/conversations", rating="down") == {rated["conversation_id"]}
                and await ids("/api/v1/conversations", handoff="true") == {handed["conversation_id"]})
    await wait_until(rating_and_handoff_stored, what="the rating and the handoff stored")

    everyone = {rated["conversation_id"], handed["conversation_id"], other["conversation_id"]}
    assert await ids("/api/v1/conversations") == everyone
    assert await ids("/api/v1/conversations", chatbot_id=help_desk["id"]) == {other["conversation_id"]}
    assert await ids("/api/v1/conversations", handoff="false") == {rated["conversation_id"], other["conversation_id"]}
    assert await ids("/api/v1/conversations", rating="up") == set()
    assert await ids(f"/api/v1/chatbots/{shop['id']}/conversations", rating="down") == {rated["conversation_id"]}
    assert await ids(f"/api/v1/chatbots/{help_desk['id']}/conversations", handoff="true") == set()
    status, body = await api.call("GET", "/api/v1/conversations", key=key, params={"rating": "meh"})
    assert status == 422 and body["error"]["code"] == "validation_error"

    # another tenant's key sees none of them
    stranger = (await api.tenant(stack.admin_key, "Stranger"))["api_key"]["key"]
    status, page = await api.call("GET", "/api/v1/conversations", key=stranger)
    assert status == 200 and page["data"] == []
    status, page = await api.call("GET", "/api/v1/conversations", key=stranger, params={"chatbot_id": shop["id"]})
    assert status == 200 and page["data"] == []

    async def answer_with_animation():
        status, transcript = await api.call("GET", f"/api/v1/conversations/{rated['conversation_id']}", key=key)
        assert status == 200
        answer = next(m for m in transcript["messages"] if m["role"] == "assistant")
        return answer if answer["animation"] else None
    answer = await wait_until(answer_with_animation, what="the animation the reply played")
    assert answer["rating"] == "down" and answer["rating_comment"] == "too vague"
    assert answer["usage"]["cost_usd"] >= 0 and answer["timings"]["total_ms"] > 0
    assert answer["animation"] and answer["animation"].get("behaviour")


async def test_our_own_pages_may_use_a_chatbot_limited_to_other_sites(api, stack):
    """A same-origin GET carries no Origin; the browser marks it Sec-Fetch-Site: same-origin
    (the console's live preview and the widget frame load the config so)."""
    tenant = await api.tenant(stack.admin_key, "Origins Ltd")
    bot = await api.chatbot(tenant["api_key"]["key"], allowed_origins=["https://shop.example"])
    config = f"/api/widget/v1/{bot['embed_id']}/config"
    assert (await api.call("GET", config))[0] == 403
    assert (await api.call("GET", config, headers={"Sec-Fetch-Site": "same-origin"}))[0] == 200
    assert (await api.call("GET", config, headers={"Origin": "https://evil.example",
                                                   "Sec-Fetch-Site": "same-origin"}))[0] == 403
    assert (await api.call("GET", config, headers={"Sec-Fetch-Site": "cross-site"}))[0] == 403
