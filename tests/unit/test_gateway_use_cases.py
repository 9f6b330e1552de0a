"""The gateway's use cases (services/gateway/service.py) with an in-memory bus and a stand-in
conversation client: no aiohttp app, no RabbitMQ, no Postgres."""
from __future__ import annotations

import uuid

import pytest

from common import events as ev
from common.bus import BusError
from common.errors import ServiceError
from common.testing import MemoryBus
from services.gateway import service


class Conversation:
    """Answers GET /internal/replies/{id} as the conversation service would."""

    def __init__(self, reply: dict) -> None:
        self.reply = reply
        self.asked: list[tuple[str, str, dict]] = []

    async def request(self, method: str, path: str, *, params: dict | None = None, **_):
        self.asked.append((method, path, params or {}))
        return self.reply


class DownBus:
    async def publish(self, event) -> None:
        raise BusError(f"{event.name()} was not published")


def reply(status: str = "streaming", conversation_id: uuid.UUID | None = None) -> dict:
    return {"id": str(uuid.uuid4()), "status": status, "chatbot_id": str(uuid.uuid4()),
            "conversation_id": str(conversation_id or uuid.uuid4())}


async def test_a_cancel_asks_the_ai_process_by_event_for_the_tenants_own_reply():
    bus, tenant = MemoryBus("gateway"), uuid.uuid4()
    found = reply()
    conversation = Conversation(found)
    await service.cancel_reply(service.Deps(pool=None, bus=bus, conversation=conversation), tenant, found["id"])
    assert conversation.asked == [("GET", f"/internal/replies/{found['id']}", {"tenant_id": str(tenant)})]
    [event] = bus.published
    assert isinstance(event, ev.ReplyCancelRequestedEvent)
    assert (str(event.reply_id), str(event.conversation_id)) == (found["id"], found["conversation_id"])


async def test_a_reply_of_another_conversation_is_not_found_and_a_finished_one_is_a_conflict():
    bus = MemoryBus("gateway")
    other = reply()
    with pytest.raises(ServiceError) as refused:
        await service.cancel_reply(service.Deps(None, bus, Conversation(other)), uuid.uuid4(), other["id"],
                                   conversation_id=uuid.uuid4())
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    done = reply("completed")
    with pytest.raises(ServiceError) as refused:
        await service.cancel_reply(service.Deps(None, bus, Conversation(done)), uuid.uuid4(), done["id"])
    assert (refused.value.status, refused.value.code) == (409, "reply_finished")
    assert bus.published == []


async def test_an_event_the_broker_does_not_take_is_a_503_to_retry():
    event = ev.FeedbackGivenEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=uuid.uuid4(),
                                  reply_id=uuid.uuid4(), rating="up", comment="")
    with pytest.raises(ServiceError) as refused:
        await service.publish_confirmed(service.Deps(None, DownBus(), None), event)
    assert (refused.value.status, refused.value.code) == (503, "unavailable")
    assert refused.value.headers == {"Retry-After": "2"}
