"""Quorum queues (AMQP_QUEUE_TYPE=quorum) and the migration command, against the real RabbitMQ
(quorum queues work on a single node; a throwaway vhost per test)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest
from aio_pika.exceptions import ChannelClosed

from common import events as ev
from common.bus import dead_letter_queue, retry_queue
from common.dlq import show

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "ChatbotDeletedEvent.analytics"


def deleted() -> ev.ChatbotDeletedEvent:
    return ev.ChatbotDeletedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4())


async def wait_for(predicate, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        return (await channel.declare_queue(name, passive=True)).declaration_result.message_count
    finally:
        await connection.close()


async def declares(url: str, name: str, arguments: dict | None) -> bool:
    """Whether declaring ``name`` with ``arguments`` matches the queue as it is."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments=arguments)
        return True
    except ChannelClosed as exc:
        assert "PRECONDITION_FAILED" in str(exc)
        return False
    finally:
        await connection.close()


def queues_command(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.queues", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "AMQP_URL": url}, timeout=120)


async def test_quorum_declares_replicated_queues_and_keeps_stream_queues_exclusive(make_buses, scratch_vhost):
    gateway = await make_buses("gateway", queue_type="quorum")
    for name in (QUEUE, retry_queue(QUEUE), dead_letter_queue(QUEUE)):
        assert not await declares(scratch_vhost, name, None), f"{name} is a classic queue"
        assert not await declares(scratch_vhost, name, {"x-queue-type": "classic"})
    assert await declares(scratch_vhost, dead_letter_queue(QUEUE), {"x-queue-type": "quorum"})
    # the stream queue is exclusive to its process: another connection cannot even look at it
    await gateway.open_stream(lambda event: asyncio.sleep(0))
    connection = await aio_pika.connect(scratch_vhost)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelClosed, match="RESOURCE_LOCKED"):
            await channel.declare_queue(gateway._stream_queue.name, passive=True)
    finally:
        await connection.close()


async def test_a_message_that_keeps_killing_its_consumer_ends_in_the_dead_letter_queue(make_buses, scratch_vhost):
    """A consumer that dies before acking (OOM, kill -9) gets the message again; past the delivery
    limit the quorum queue dead-letters it instead of looping for ever, and `common.dlq show` says why."""
    publisher = await make_buses("gateway", queue_type="quorum", delivery_limit=2)
    poison = deleted()
    await publisher.publish(poison)
    for _ in range(3):  # three deliveries, each consumer gone without an ack
        connection = await aio_pika.connect(scratch_vhost)
        channel = await connection.channel()
        queue = await channel.declare_queue(QUEUE, passive=True)
        message = None
        for _ in range(100):
            message = await queue.get(no_ack=False, fail=False)
            if message:
                break
            await asyncio.sleep(0.05)
        assert message is not None and message.message_id == str(poison.event_id)
        await connection.close()

    async def dead_lettered():
        return await depth(scratch_vhost, dead_letter_queue(QUEUE)) == 1
    await wait_for(dead_lettered)
    assert await depth(scratch_vhost, QUEUE) == 0
    [shown] = await show(scratch_vhost, QUEUE)
    assert "delivery_limit" in shown["reason"] and str(poison.event_id) in shown["body"]
    # the others keep flowing
    got = []
    analytics = await make_buses("analytics", queue_type="quorum", delivery_limit=2)
    analytics.subscribe(ev.ChatbotDeletedEvent, lambda event: asyncio.sleep(0, got.append(event.event_id)))
    await analytics.start_consuming()
    fine = deleted()
    await publisher.publish(fine)

    async def handled():
        return got == [fine.event_id]
    await wait_for(handled)


async def test_migrating_from_classic_to_quorum_keeps_every_message(make_buses, scratch_vhost):
    classic = await make_buses("gateway", queue_type="classic")
    waiting = [deleted() for _ in range(3)]
    for event in waiting:
        await classic.publish(event)
    # one waiting for a retry (a minute away) and one dead-lettered, as the bus leaves them
    in_retry, in_dlq = deleted(), deleted()
    channel = await classic.connection.channel()
    for event, queue, extra in ((in_retry, retry_queue(QUEUE), {"expiration": 60}),
                                (in_dlq, dead_letter_queue(QUEUE), {})):
        await channel.default_exchange.publish(aio_pika.Message(
            event.model_dump_json().encode(), type=event.name(), message_id=str(event.event_id),
            headers={"x-attempt": 1}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **extra), routing_key=queue)

    # a consumer still attached: the command refuses and changes nothing
    consumer = await make_buses("conversation", queue_type="classic")
    consumer.subscribe(ev.VisitorMessageReceivedEvent, lambda event: asyncio.sleep(0))
    await consumer.start_consuming()
    refused = queues_command(scratch_vhost, "migrate", "--to", "quorum")
    assert refused.returncode != 0 and "stop the consumers first" in refused.stderr
    await consumer.close()
    assert queues_command(scratch_vhost, "status", "--type", "quorum").returncode == 1

    migrated = queues_command(scratch_vhost, "migrate", "--to", "quorum")
    assert migrated.returncode == 0, migrated.stderr
    assert queues_command(scratch_vhost, "status", "--type", "quorum").returncode == 0
    assert not await declares(scratch_vhost, QUEUE, None)
    assert await depth(scratch_vhost, dead_letter_queue(QUEUE)) == 1
    # a second run finds nothing to do
    again = queues_command(scratch_vhost, "migrate", "--to", "quorum")
    assert again.returncode == 0 and "0 queues" in again.stdout, again.stdout

    # quorum services take every message that waited, in order, and new ones still arrive (bound again)
    got = []
    analytics = await make_buses("analytics", queue_type="quorum")
    analytics.subscribe(ev.ChatbotDeletedEvent, lambda event: asyncio.sleep(0, got.append(event.event_id)))
    await analytics.start_consuming()
    publisher = await make_buses("gateway", queue_type="quorum")
    later = deleted()
    await publisher.publish(later)

    async def all_handled():
        return len(got) == 5
    await wait_for(all_handled)
    assert got[0] == in_retry.event_id  # the retry came out of the queue before the rest were taken
    assert got[1:4] == [e.event_id for e in waiting] and got[4] == later.event_id
    [shown] = await show(scratch_vhost, QUEUE)
    assert str(in_dlq.event_id) in shown["body"]
