"""Visitors chat in follow-ups: "Do you repair e-bikes?" then "How long does it take?".
Through the widget's SSE API and through the OpenAI-compatible API (history in ``messages``),
the follow-up is answered from the shop's knowledge, with its citation, not with the
fallback. Questions about the bot itself are answered from its persona."""
from __future__ import annotations

import asyncio

import openai
import pytest

from scripts.seed import DEMO_CHATBOT, FAQ

pytestmark = pytest.mark.e2e


@pytest.fixture
async def shop(api, stack):
    tenant = await api.tenant(stack.admin_key, name="Northwind")
    key = tenant["api_key"]["key"]
    chatbot = await api.chatbot(key, **{k: v for k, v in DEMO_CHATBOT.items()})
    base = f"/api/v1/chatbots/{chatbot['id']}/knowledge"
    status, document = await api.call("POST", base + "/documents/text", key=key, json={
        "text": FAQ.read_text(), "title": "Northwind Bikes FAQ", "format": "markdown"})
    assert status == 202, document
    for _ in range(600):
        _, document = await api.call("GET", f"{base}/documents/{document['id']}", key=key)
        if document["status"] in ("indexed", "failed"):
            break
        await asyncio.sleep(0.1)
    assert document["status"] == "indexed", document
    return {"key": key, "chatbot": chatbot, "embed_id": chatbot["embed_id"], "tenant_id": tenant["tenant"]["id"]}


async def ask(api, shop, conv, stream, text: str, n: int) -> dict:
    status, body = await api.say(shop["embed_id"], conv, text, f"m{n}")
    assert status == 202, body
    events = await stream.until("message.end", timeout=30)
    return events[-1].data


async def test_a_follow_up_in_the_widget_is_answered_from_the_knowledge(api, shop):
    fallback = DEMO_CHATBOT["persona"]["fallback_answer"]
    conv = await api.conversation(shop["embed_id"])
    stream = await api.stream(shop["embed_id"], conv)
    first = await ask(api, shop, conv, stream, "Do you repair e-bikes?", 1)
    assert "e-bikes" in first["text"] and first["citations"]

    follow_up = await ask(api, shop, conv, stream, "How long does it take?", 2)
    assert follow_up["text"] != fallback
    assert "working day" in follow_up["text"] or "within an hour" in follow_up["text"], follow_up["text"]
    assert any("repair" in c["snippet"] for c in follow_up["citations"]), follow_up["citations"]

    # a change of subject is still understood on its own
    hours = await ask(api, shop, conv, stream, "And when are you open on Saturday?", 3)
    assert "10:00 to 17:00" in hours["text"], hours["text"]

    about = await ask(api, shop, conv, stream, "What can you help me with?", 4)
    assert about["text"] != fallback and "Aria from Northwind Bikes" in about["text"]
    assert "Do you repair e-bikes?" in about["text"]
    await stream.response.release()


async def test_a_question_in_another_language_finds_the_english_answer(api, shop):
    conv = await api.conversation(shop["embed_id"])
    stream = await api.stream(shop["embed_id"], conv)
    answer = await ask(api, shop, conv, stream, "Wann habt ihr am Samstag geöffnet?", 1)
    assert "10:00 to 17:00" in answer["text"] and answer["citations"], answer["text"]
    await stream.response.release()


async def test_a_follow_up_through_the_openai_sdk_uses_the_history_in_messages(stack, shop):
    client = openai.AsyncOpenAI(base_url=f"{stack.gateway}/api/v1", api_key=shop["key"], max_retries=0, timeout=60)
    first = await client.chat.completions.create(model=shop["chatbot"]["id"], messages=[
        {"role": "user", "content": "Do you repair e-bikes?"}])
    answer = first.choices[0].message.content
    assert "e-bikes" in answer
    reply = await client.chat.completions.create(model=shop["chatbot"]["id"], messages=[
        {"role": "user", "content": "Do you repair e-bikes?"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "How long does it take?"}])
    text = reply.choices[0].message.content
    assert text != DEMO_CHATBOT["persona"]["fallback_answer"]
    assert "working day" in text or "within an hour" in text, text


ODD_QUESTIONS = [
    "?",                                                     # no words at all
    "the of and to is it a",                                 # stop words only
    ("Could you tell me about your repairs " * 110)[:4000],  # as long as a message may be
    "ᚠᚢᚦᚨᚱᚲ ᚷᚹᚺᚾ",                                           # a script no tokenizer here knows
    "🚲🚲🔧❓",
]


async def test_odd_questions_get_an_answer_or_the_fallback_never_an_error(api, shop):
    conv = await api.conversation(shop["embed_id"])
    stream = await api.stream(shop["embed_id"], conv)
    for n, question in enumerate(ODD_QUESTIONS):
        status, body = await api.say(shop["embed_id"], conv, question, f"odd{n}")
        assert status == 202, (question, body)
        events = await stream.until("message.end", timeout=30)
        assert not [e for e in events if e.event == "error"], question
        assert events[-1].data["text"].strip(), question
    await stream.response.release()
    # the tenant's own search box takes the same inputs
    for question in ODD_QUESTIONS:
        status, body = await api.call("POST", f"/api/v1/chatbots/{shop['chatbot']['id']}/knowledge/search",
                                      key=shop["key"], json={"query": question[:2000]})
        assert status == 200, (question, body)
