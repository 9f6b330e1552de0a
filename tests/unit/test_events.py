import uuid

from common import events as ev
from common.logging import bound_contextvars
from common.topology import SUBSCRIPTIONS, durable_queues


def test_every_event_carries_the_envelope_and_its_class_is_its_wire_name():
    tenant = uuid.uuid4()
    event = ev.ChatbotDeletedEvent(tenant_id=tenant, chatbot_id=uuid.uuid4())
    wire = event.model_dump(mode="json")
    assert {"event_id", "occurred_at", "tenant_id", "correlation_id"} <= wire.keys()
    assert event.name() == "ChatbotDeletedEvent"
    assert ev.EVENT_TYPES["ChatbotDeletedEvent"] is ev.ChatbotDeletedEvent
    assert all(name.endswith("Event") for name in ev.EVENT_TYPES)


def test_events_take_the_correlation_id_of_the_work_in_progress():
    with bound_contextvars(correlation_id="turn-42"):
        event = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
    assert event.correlation_id == "turn-42"
    other = ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())
    assert other.correlation_id != "turn-42"


def test_conversation_events_route_by_conversation_others_by_tenant():
    tenant, conversation = uuid.uuid4(), uuid.uuid4()
    chunk = ev.AiReplyChunkEvent(tenant_id=tenant, chatbot_id=uuid.uuid4(), conversation_id=conversation,
                                 reply_id=uuid.uuid4(), reply_seq=2, seq=1, offset=0, text="Hi")
    assert chunk.routing_key() == str(conversation)
    assert ev.ChatbotDeletedEvent(tenant_id=tenant, chatbot_id=uuid.uuid4()).routing_key() == str(tenant)


def test_events_round_trip_through_json():
    original = ev.AiReplyCompletedEvent(
        tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=uuid.uuid4(), reply_id=uuid.uuid4(),
        reply_seq=4, visitor_message_id=uuid.uuid4(), text="Hello", provider="local", model="m",
        citations=[ev.Citation(title="FAQ", snippet="Open 9-5", score=0.8)])
    assert ev.AiReplyCompletedEvent.model_validate_json(original.model_dump_json()) == original


def test_topology_gives_each_subscriber_its_own_queue_and_analytics_every_durable_event():
    queues = [q for _, q in durable_queues()]
    assert len(queues) == len(set(queues))
    assert "AiReplyCompletedEvent.conversation" in queues and "AiReplyCompletedEvent.avatar" in queues
    durable = {name for name, cls in ev.EVENT_TYPES.items() if not cls.transient}
    assert {cls.name() for cls in SUBSCRIPTIONS["analytics"]} == durable
    assert not any(cls.transient for classes in SUBSCRIPTIONS.values() for cls in classes)
