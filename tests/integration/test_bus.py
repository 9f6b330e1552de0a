"""The bus against a real RabbitMQ (a throwaway vhost per test)."""
from __future__ import annotations

import asyncio
import functools
import uuid

import aio_pika
import asyncpg
import pytest

from common import events as ev
from common.availability import BROKER, DATABASE, unavailable_dependency
from common.bus import Bus, BusError, dead_letter_queue
from common.dlq import replay


async def wait_for(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def deleted(tenant=None) -> ev.ChatbotDeletedEvent:
    return ev.ChatbotDeletedEvent(tenant_id=tenant or uuid.uuid4(), chatbot_id=uuid.uuid4())


def chunk(conversation_id: uuid.UUID, text: str = "hi") -> ev.AiReplyChunkEvent:
    return ev.AiReplyChunkEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=conversation_id,
                                reply_id=uuid.uuid4(), reply_seq=2, seq=1, offset=0, text=text)


@pytest.fixture(params=["classic", "quorum"])
def buses(request, make_buses):
    """Buses of one queue type (AMQP_QUEUE_TYPE): every test here runs on both."""
    return functools.partial(make_buses, queue_type=request.param)


async def test_two_services_both_receive_an_event_and_replicas_share_one_queue(buses):
    publisher = await buses("gateway")
    got: dict[str, list] = {"analytics-1": [], "analytics-2": [], "conversation": []}
    a1, a2 = await buses("analytics"), await buses("analytics")
    for name, bus in (("analytics-1", a1), ("analytics-2", a2)):
        bus.subscribe(ev.ChatbotDeletedEvent, lambda e, name=name: _append(got[name], e))
        await bus.start_consuming()
    conv = await buses("conversation")
    conv.subscribe(ev.VisitorMessageReceivedEvent, lambda e: _append(got["conversation"], e))
    await conv.start_consuming()

    sent = [deleted() for _ in range(20)]
    for event in sent:
        await publisher.publish(event)
    await wait_for(lambda: len(got["analytics-1"]) + len(got["analytics-2"]) == 20)
    received = {e.event_id for e in got["analytics-1"] + got["analytics-2"]}
    assert received == {e.event_id for e in sent}  # each once, across the replicas
    assert got["analytics-1"] and got["analytics-2"]  # competing consumers both worked
    assert got["conversation"] == []  # it does not subscribe to this event


async def _append(bucket: list, event) -> None:
    bucket.append(event)


async def test_an_event_published_before_its_consumer_started_waits_for_it(buses):
    publisher = await buses("gateway")  # declares every service's queues
    event = deleted()
    await publisher.publish(event)
    got = []
    analytics = await buses("analytics")
    analytics.subscribe(ev.ChatbotDeletedEvent, lambda e: _append(got, e))
    await analytics.start_consuming()
    await wait_for(lambda: got)
    assert got[0].event_id == event.event_id


async def test_a_failing_handler_is_retried_then_dead_lettered_and_can_be_replayed(buses, scratch_vhost):
    publisher = await buses("gateway")
    attempts = []
    healthy = asyncio.Event()

    async def flaky(event):
        attempts.append(event.event_id)
        if not healthy.is_set():
            raise RuntimeError("database is down")

    analytics = await buses("analytics", max_retries=2, retry_delay_ms=20)
    analytics.subscribe(ev.ChatbotDeletedEvent, flaky)
    await analytics.start_consuming()
    event = deleted()
    await publisher.publish(event)
    await wait_for(lambda: len(attempts) == 3)  # the first try and two retries

    channel = await analytics.connection.channel()
    dlq = await channel.declare_queue(dead_letter_queue("ChatbotDeletedEvent.analytics"), passive=True)
    message = None
    for _ in range(100):
        message = await dlq.get(no_ack=False, fail=False)
        if message:
            break
        await asyncio.sleep(0.05)
    assert message is not None, "the message did not reach the dead-letter queue"
    assert "database is down" in message.headers["x-dead-letter-reason"]
    await message.nack(requeue=True)

    healthy.set()
    moved = await replay(scratch_vhost, "ChatbotDeletedEvent.analytics")
    assert moved == 1
    await wait_for(lambda: len(attempts) == 4)
    assert attempts[-1] == event.event_id


async def test_a_dependency_outage_holds_events_without_using_retries_and_loses_none(buses):
    """While the database is away the consumer takes nothing (no hot loop, no retry counted,
    nothing dead-lettered); once the probe answers, every event is handled once, a poison
    event meanwhile still goes straight to the dead-letter queue."""
    publisher = await buses("gateway")
    database_up = asyncio.Event()
    calls, handled = [], []

    async def handler(event):
        calls.append(event.event_id)
        if not database_up.is_set():
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        handled.append(event.event_id)

    async def probe():
        if not database_up.is_set():
            raise ConnectionRefusedError(111, "Connection refused")

    analytics = await buses("analytics", max_retries=1, retry_delay_ms=20)
    analytics.add_probe(DATABASE, probe)
    analytics.subscribe(ev.ChatbotDeletedEvent, handler)
    await analytics.start_consuming()
    sent = [deleted() for _ in range(30)]
    for event in sent:
        await publisher.publish(event)
    await wait_for(lambda: analytics.held)
    assert set(analytics.held) == {DATABASE}
    await asyncio.sleep(2)  # an outage of a few seconds, several probe rounds
    tried_while_down = len(calls)
    assert tried_while_down <= 64 + 1, "the consumer kept taking events while the database was away"
    exchange = await publisher._exchange("ChatbotDeletedEvent")
    await exchange.publish(aio_pika.Message(b'{"not": "an event"}', type="ChatbotDeletedEvent"), routing_key="x")

    database_up.set()
    await wait_for(lambda: set(handled) == {e.event_id for e in sent}, timeout=20)
    assert not analytics.held and len(handled) == len(sent)
    channel = await analytics.connection.channel()
    for name in ("ChatbotDeletedEvent.analytics.retry", "ChatbotDeletedEvent.analytics.dlq"):
        queue = await channel.declare_queue(name, passive=True)
        depth = queue.declaration_result.message_count
        assert depth == (1 if name.endswith("dlq") else 0), (name, depth)  # only the poison event


async def test_a_malformed_event_is_dead_lettered_with_a_reason_and_the_consumer_goes_on(buses):
    publisher = await buses("gateway")
    got = []
    analytics = await buses("analytics")
    analytics.subscribe(ev.ChatbotDeletedEvent, lambda e: _append(got, e))
    await analytics.start_consuming()
    exchange = await publisher._exchange("ChatbotDeletedEvent")
    await exchange.publish(aio_pika.Message(b'{"not": "an event"}', type="ChatbotDeletedEvent"), routing_key="x")
    good = deleted()
    await publisher.publish(good)
    await wait_for(lambda: got)
    assert got[0].event_id == good.event_id
    channel = await analytics.connection.channel()
    dlq = await channel.declare_queue(dead_letter_queue("ChatbotDeletedEvent.analytics"), passive=True)
    message = None
    for _ in range(100):
        message = await dlq.get(fail=False)
        if message:
            break
        await asyncio.sleep(0.05)
    assert message is not None and message.headers["x-dead-letter-reason"].startswith("malformed event")


async def test_stream_events_reach_only_the_gateway_process_streaming_that_conversation(buses):
    ai = await buses("ai")
    gw1, gw2 = await buses("gateway"), await buses("gateway")
    seen1, seen2 = [], []
    await gw1.open_stream(lambda e: _append(seen1, e))
    await gw2.open_stream(lambda e: _append(seen2, e))
    c1, c2 = uuid.uuid4(), uuid.uuid4()
    await gw1.bind_stream(str(c1))
    await gw2.bind_stream(str(c2))
    for i in range(5):
        await ai.publish(chunk(c1, f"one-{i}"))
        await ai.publish(chunk(c2, f"two-{i}"))
    await wait_for(lambda: len(seen1) == 5 and len(seen2) == 5)
    assert [e.text for e in seen1] == [f"one-{i}" for i in range(5)]  # in order
    assert [e.text for e in seen2] == [f"two-{i}" for i in range(5)]
    await gw1.unbind_stream(str(c1))
    await ai.publish(chunk(c1, "after"))
    await ai.publish(chunk(c2, "marker"))
    await wait_for(lambda: len(seen2) == 6)
    assert len(seen1) == 5


async def test_a_durable_event_that_no_queue_takes_raises_instead_of_vanishing(scratch_vhost):
    connection = await aio_pika.connect_robust(scratch_vhost)
    bus = Bus(scratch_vhost, "gateway")
    bus.connection = connection
    bus._publish_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    # no topology declared: the exchange exists, no queue is bound
    await bus._exchange("ChatbotDeletedEvent")
    with pytest.raises(BusError):
        await bus.publish(deleted())
    await connection.close()


async def test_a_publish_the_broker_cannot_take_raises_bus_error_seen_as_a_broker_outage(buses):
    """Callers catch one error (BusError) for "the broker did not take it", and the bus still
    knows it for an outage (not a broken event), so a handler's retry budget is not spent."""
    publisher = await buses("gateway")
    await publisher.connection.close()  # the connection is gone mid-life
    with pytest.raises(BusError) as raised:
        await publisher.publish(deleted())
    assert unavailable_dependency(raised.value) == BROKER
