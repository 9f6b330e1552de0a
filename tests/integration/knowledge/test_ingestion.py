"""Uploads go through the outbox, the real consumer ingests them, search finds them."""
from __future__ import annotations

import asyncio
import uuid

import aio_pika

from common.web import POOL

from tests.integration.knowledge.conftest import KnowledgeClient, wait_for
from tests.integration.knowledge.samples import make_docx, make_encrypted_pdf, make_html, make_pdf

GUIDE = """# Acme Help Centre

## Returns and refunds

You can return any unused item within 30 days of delivery for a full refund.
Refunds go back to the original payment method within five business days.

## Shipping

Standard shipping takes three to five business days. Express shipping arrives the next day
if you order before 2 pm. Shipping to Norway and Switzerland is not available.

### International orders

International orders may incur customs fees, which the recipient pays on delivery.
"""


async def test_markdown_upload_is_indexed_and_searchable_with_citations(knowledge: KnowledgeClient):
    doc = await knowledge.upload("guide.md", GUIDE.encode(), "text/markdown", title="Acme help")
    assert doc["status"] == "queued"
    done = await knowledge.wait_status(doc["id"])
    assert done["status"] == "indexed", done
    assert done["chunks"] >= 3 and done["progress"]["percent"] == 100

    found = await knowledge.search("how long do I have to send something back for my money?")
    top = found["data"][0]
    assert "30 days" in top["snippet"]
    assert top["title"] == "Acme help"
    assert top["heading_path"] == ["Acme Help Centre", "Returns and refunds"]
    assert top["document_id"] == doc["id"] and 0 < top["score"] <= 1
    assert found["knowledge_version"] == 1

    # the internal endpoint the ai service calls
    resp = await knowledge.client.post("/internal/search", json={
        "tenant_id": str(knowledge.tenant_id), "chatbot_id": str(knowledge.chatbot_id),
        "query": "customs fees for international orders", "top_k": 2, "score_threshold": 0.0})
    body = await resp.json()
    assert resp.status == 200, body
    assert len(body["data"]) <= 2 and "customs" in body["data"][0]["snippet"]
    assert body["data"][0]["heading_path"][-1] == "International orders"
    assert set(body["data"][0]) == {"title", "url", "snippet", "score", "document_id", "chunk_id", "heading_path"}

    stats = await knowledge.call("GET", "/stats")
    assert stats["documents"] == 1 and stats["indexed"] == 1 and stats["chunks"] == done["chunks"]
    assert stats["tokens"] > 50 and stats["last_sync_at"] is not None


async def test_pdf_docx_html_and_text_are_extracted(knowledge: KnowledgeClient):
    pdf = await knowledge.upload("manual.pdf", make_pdf([
        "The X200 vacuum battery lasts ninety minutes on eco mode.",
        "Clean the X200 dust filter every two weeks under cold water."]), "application/pdf")
    docx = await knowledge.upload("policy.docx", make_docx("Employee handbook", [
        ("Holidays", ["Every employee gets twenty-eight days of paid holiday per year."]),
        ("Remote work", ["Staff may work from home up to three days each week."])]),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    html = await knowledge.upload("about.html", make_html(
        "Opening hours", "<p>Our Berlin store is open Monday to Saturday from 9 am to 8 pm.</p>").encode(),
        "text/html")
    text = await knowledge.call("POST", "/documents/text", expect=202, json={
        "title": "Warranty", "text": "All Acme kettles come with a two year warranty against defects."})
    for doc in (pdf, docx, html, text):
        assert (await knowledge.wait_status(doc["id"]))["status"] == "indexed"

    cases = {"battery life of the vacuum": (pdf["id"], "ninety minutes"),
             "how many vacuation days do employees get": (docx["id"], "twenty-eight days"),
             "when is the Berlin shop open": (html["id"], "9 am to 8 pm"),
             "kettle guarantee": (text["id"], "two year warranty")}
    for query, (document_id, phrase) in cases.items():
        top = (await knowledge.search(query, top_k=3))["data"][0]
        assert top["document_id"] == document_id and phrase in top["snippet"], (query, top)
    pdf_hit = (await knowledge.search("dust filter cleaning"))["data"][0]
    assert pdf_hit["heading_path"] == ["Page 2"]
    docx_hit = (await knowledge.search("work from home"))["data"][0]
    assert docx_hit["heading_path"] == ["Employee handbook", "Remote work"]
    html_doc = await knowledge.document(html["id"])
    assert html_doc["title"] == "Opening hours"
    # navigation and footer are not indexed
    assert not (await knowledge.search("copyright cookie settings privacy terms", score_threshold=0.83))["data"]


async def test_bad_files_fail_with_a_reason_and_the_worker_keeps_going(knowledge: KnowledgeClient):
    encrypted = await knowledge.upload("secret.pdf", make_encrypted_pdf(["classified"]), "application/pdf")
    corrupt = await knowledge.upload("broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20, "application/pdf")
    binary = await knowledge.upload("notes.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(2000), "text/plain")
    fake_docx = await knowledge.upload("letter.docx", b"PK\x03\x04 this is not a zip", "application/octet-stream")
    reasons = {}
    for name, doc in (("encrypted", encrypted), ("corrupt", corrupt), ("binary", binary), ("docx", fake_docx)):
        done = await knowledge.wait_status(doc["id"])
        assert done["status"] == "failed", done
        reasons[name] = done["reason"]
    assert "encrypted" in reasons["encrypted"]
    assert "PDF" in reasons["corrupt"]
    assert "binary" in reasons["binary"]
    assert "DOCX" in reasons["docx"]
    ok = await knowledge.upload("fine.txt", b"The worker still indexes good files after bad ones.", "text/plain")
    assert (await knowledge.wait_status(ok["id"]))["status"] == "indexed"
    failed = await knowledge.call("GET", "/documents", params={"status": "failed"})
    assert len(failed["data"]) == 4


async def test_duplicates_replace_delete_and_versions(knowledge: KnowledgeClient):
    first = await knowledge.upload("a.txt", b"Parking is free for customers on level two.", "text/plain")
    await knowledge.upload("copy.txt", b"Parking is free for customers on level two.", "text/plain", expect=409)
    assert (await knowledge.wait_status(first["id"]))["status"] == "indexed"
    # the same text in another file format is caught by the content hash after extraction
    same_text = await knowledge.upload("a.md", b"Parking is free for customers  on level two.\n", "text/markdown")
    assert "duplicate" in (await knowledge.wait_status(same_text["id"]))["reason"]

    v1 = (await knowledge.search("parking"))["knowledge_version"]
    replaced = await knowledge.call("PUT", f"/documents/{first['id']}", expect=202,
                                    data=_form("a.txt", b"Parking now costs two euros per hour on level two."))
    assert replaced["status"] == "queued"
    await wait_for(lambda: _indexed_after(knowledge, first["id"], v1))
    hits = (await knowledge.search("how much does parking cost"))["data"]
    assert "two euros" in hits[0]["snippet"]
    assert all("free for customers" not in h["snippet"] for h in hits)

    resynced = await knowledge.call("POST", f"/documents/{first['id']}/resync", expect=202)
    assert resynced["status"] == "queued"
    assert (await knowledge.wait_status(first["id"]))["status"] == "indexed"

    before = (await knowledge.search("parking"))["knowledge_version"]
    deleted = await knowledge.call("DELETE", f"/documents/{first['id']}")
    assert deleted["knowledge_version"] == before + 1
    assert (await knowledge.search("parking"))["data"] == []
    await knowledge.call("GET", f"/documents/{first['id']}", expect=404)
    async with knowledge.app[POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM chunks WHERE document_id = $1", uuid.UUID(first["id"])) == 0


async def _indexed_after(knowledge: KnowledgeClient, document_id: str, version: int) -> bool:
    doc = await knowledge.document(document_id)
    return doc["status"] == "indexed" and (await knowledge.search("parking"))["knowledge_version"] > version


def _form(name: str, data: bytes):
    from tests.integration.knowledge.conftest import make_form
    return make_form(name, data, "text/plain")


async def test_knowledge_is_isolated_per_chatbot_and_tenant(knowledge: KnowledgeClient):
    doc = await knowledge.upload("secret.txt", b"The staff wifi password is purple-giraffe-42.", "text/plain")
    assert (await knowledge.wait_status(doc["id"]))["status"] == "indexed"
    other_bot = KnowledgeClient(knowledge.client, knowledge.tenant_id, uuid.uuid4())
    assert (await other_bot.search("wifi password"))["data"] == []
    intruder = KnowledgeClient(knowledge.client, uuid.uuid4(), knowledge.chatbot_id)
    await intruder.call("POST", "/search", expect=404, json={"query": "wifi password"})
    await intruder.call("GET", f"/documents/{doc['id']}", expect=404)
    resp = await knowledge.client.post("/internal/search", json={
        "tenant_id": str(uuid.uuid4()), "chatbot_id": str(knowledge.chatbot_id), "query": "wifi"})
    assert resp.status == 404


async def test_indexed_and_deleted_events_reach_rabbitmq(knowledge: KnowledgeClient, knowledge_vhost):
    connection = await aio_pika.connect_robust(knowledge_vhost)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        for name in ("DocumentIndexedEvent", "DocumentDeletedEvent", "DocumentFailedEvent"):
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
            await queue.bind(exchange, routing_key=str(knowledge.tenant_id))
        seen: list[tuple[str, dict]] = []

        async def on_message(message):
            import json
            seen.append((message.type, json.loads(message.body)))
        await queue.consume(on_message, no_ack=True)

        doc = await knowledge.upload("events.txt", b"Events travel through the outbox to RabbitMQ.", "text/plain")
        await knowledge.wait_status(doc["id"])
        await knowledge.call("DELETE", f"/documents/{doc['id']}")

        async def both_arrived():
            return {t for t, _ in seen} >= {"DocumentIndexedEvent", "DocumentDeletedEvent"}
        await wait_for(both_arrived)
        indexed = next(body for t, body in seen if t == "DocumentIndexedEvent")
        deleted = next(body for t, body in seen if t == "DocumentDeletedEvent")
        assert indexed["document_id"] == doc["id"] and indexed["chunks"] == 1
        assert deleted["knowledge_version"] == indexed["knowledge_version"] + 1
    finally:
        await connection.close()


async def test_settings_change_re_chunks_every_document(knowledge: KnowledgeClient):
    settings = await knowledge.call("GET", "/settings")
    assert settings["embedding_provider"] == "local" and settings["embedding_dim"] == 384
    long_text = "\n\n".join(f"Paragraph {i} explains feature number {i} of the product in some detail, "
                            f"with words enough to fill a few tokens of text." for i in range(30))
    doc = await knowledge.upload("long.txt", long_text.encode(), "text/plain")
    before = (await knowledge.wait_status(doc["id"]))["chunks"]
    await knowledge.call("PATCH", "/settings", json={"chunk_size": 60, "chunk_overlap": 90}, expect=409)
    updated = await knowledge.call("PATCH", "/settings", json={"chunk_size": 60, "chunk_overlap": 10, "top_k": 3})
    assert updated["documents_requeued"] == 1 and updated["chunk_size"] == 60

    async def rechunked():
        d = await knowledge.document(doc["id"])
        return d if d["status"] == "indexed" and d["chunks"] > before else None
    await wait_for(rechunked)
    assert len((await knowledge.search("feature number 7"))["data"]) == 3


async def test_progress_is_visible_and_the_service_answers_while_embedding(knowledge: KnowledgeClient):
    await knowledge.call("PATCH", "/settings", json={"chunk_size": 50, "chunk_overlap": 0})
    paragraphs = [f"Topic {i}: the answer to question number {i} is that widget {i} needs "
                  f"{i} screws, a {i} millimetre spanner and about {i} minutes of patience." for i in range(32)]
    doc = await knowledge.upload("long.md", "\n\n".join(paragraphs).encode(), "text/markdown")
    seen_progress: set[int] = set()
    slowest_ms = 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        assert loop.time() < deadline, "the document was not indexed in time"
        started = loop.time()
        current = await knowledge.document(doc["id"])
        await knowledge.call("GET", "/stats")
        slowest_ms = max(slowest_ms, (loop.time() - started) * 1000)
        if current["status"] == "processing":
            seen_progress.add(current["progress"]["chunks_embedded"])
        if current["status"] in ("indexed", "failed"):
            break
        await asyncio.sleep(0.02)
    assert current["status"] == "indexed" and current["chunks"] >= 16
    # batches of 8 (the test setting): several intermediate counts were visible
    assert len(seen_progress - {0}) >= 2, seen_progress
    assert slowest_ms < 1000  # embedding runs off the event loop
