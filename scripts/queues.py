"""The durable queues' type: see it, and move a deployment from one type to the other.

    python -m scripts.queues status                  # each queue: declared as configured, or not
    python -m scripts.queues migrate --to quorum     # classic -> quorum (or --to classic)

Uses ``AMQP_URL``; ``AMQP_DELIVERY_LIMIT`` as the services do. A queue's type is fixed when it is
declared, so migrating means drain, then redeclare. For each ``<EventClass>.<service>`` queue whose
declaration differs from the target (its type, or a changed delivery limit):

1. its messages, and those of its retry queue, are moved to ``<queue>.migrating`` (a plain
   durable queue), and its dead-letter queue's to ``<queue>.dlq.migrating``, each message
   acked only after the broker confirmed its copy;
2. the three queues are deleted and declared again as the target, bound as the services bind
   them (``Bus.declare_topology``);
3. the moved messages go back, in their order; the ``.migrating`` queues are deleted.

Messages waiting in a retry queue go straight back to their queue (an early retry; their
attempt count stays). Run it with the consumers stopped (the ``app`` containers, or
``make stop``): it refuses a queue that has consumers. Interrupted, it can simply be run
again: it picks up what is left in the ``.migrating`` queues. docs/scaling.md has the steps.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aio_pika
from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import ChannelClosed

from common.bus import Bus, dead_letter_queue, queue_settings, retry_queue
from common.topology import durable_queues

MIGRATING = ".migrating"


def say(message: str) -> None:
    print(f"[queues] {message}", flush=True)


async def _declared(connection: AbstractRobustConnection, name: str, arguments: dict | None) -> str:
    """``missing``, ``same`` (declaring it with ``arguments`` changes nothing) or ``different``.
    Each try gets its own channel: the broker closes a channel on a failed declaration."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, passive=True)
    except ChannelClosed:
        return "missing"
    if channel.is_closed:
        channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=arguments)
        return "same"
    except ChannelClosed as exc:
        if "PRECONDITION_FAILED" not in str(exc):
            raise
        return "different"
    finally:
        if not channel.is_closed:
            await channel.close()


async def _consumers(connection: AbstractRobustConnection, name: str) -> int:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        return queue.declaration_result.consumer_count or 0
    except ChannelClosed:
        return 0
    finally:
        if not channel.is_closed:
            await channel.close()


async def _move(channel: AbstractChannel, source: str, target: str) -> int:
    """Every message of ``source`` to the end of ``target``, in order; each acked once its copy
    is confirmed. A copy loses its expiration: whatever waited for a retry goes back now."""
    queue = await channel.declare_queue(source, passive=True)
    moved = 0
    while True:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            return moved
        await channel.default_exchange.publish(Message(
            message.body, content_type=message.content_type, type=message.type,
            message_id=message.message_id, correlation_id=message.correlation_id,
            headers=message.headers or {}, delivery_mode=DeliveryMode.PERSISTENT), routing_key=target)
        await message.ack()
        moved += 1


async def status(url: str, queue_type: str, delivery_limit: int) -> dict[str, str]:
    """Each durable queue: ``same`` as the target declaration, ``different`` or ``missing``."""
    bus = Bus(url, "queues", queue_type=queue_type, delivery_limit=delivery_limit)
    connection = await aio_pika.connect_robust(url)
    try:
        return {name: await _declared(connection, name, arguments)
                for _, queue in durable_queues() for name, arguments in bus.queue_arguments(queue)}
    finally:
        await connection.close()


async def migrate(url: str, queue_type: str, delivery_limit: int) -> dict[str, int]:
    """Redeclare every queue that differs from ``queue_type``; messages moved per queue."""
    target = Bus(url, "queues", queue_type=queue_type, delivery_limit=delivery_limit)
    connection = await aio_pika.connect_robust(url)
    moved: dict[str, int] = {}
    try:
        plan = []
        for _, queue in durable_queues():
            states = {name: await _declared(connection, name, arguments)
                      for name, arguments in target.queue_arguments(queue)}
            leftovers = [name for name in (queue + MIGRATING, dead_letter_queue(queue) + MIGRATING)
                         if await _declared(connection, name, None) != "missing"]
            if "different" in states.values() or leftovers:
                plan.append((queue, [name for name, state in states.items() if state == "different"]))
        busy = {name: n for _, names in plan for name in names if (n := await _consumers(connection, name))}
        if busy:
            raise SystemExit(f"stop the consumers first (make stop, or the app containers): {busy}")
        channel = await connection.channel(publisher_confirms=True)
        for queue, different in plan:
            holding, dlq_holding = queue + MIGRATING, dead_letter_queue(queue) + MIGRATING
            await channel.declare_queue(holding, durable=True)
            await channel.declare_queue(dlq_holding, durable=True)
            count = 0
            # the retry queue first: those messages came out of the queue before the ones in it
            for name, into in ((retry_queue(queue), holding), (queue, holding),
                               (dead_letter_queue(queue), dlq_holding)):
                if name in different:
                    count += await _move(channel, name, into)
                    await channel.queue_delete(name)
            moved[queue] = count
        await target.connect()  # declares every queue as the target, and binds them
        # a new channel: RabbitMQ 3.10's channel keeps the old queue's type under its name and
        # crashes publishing to the same name redeclared as another type
        await channel.close()
        channel = await connection.channel(publisher_confirms=True)
        for queue, _ in plan:
            for holding, into in ((queue + MIGRATING, queue), (dead_letter_queue(queue) + MIGRATING,
                                                                dead_letter_queue(queue))):
                await _move(channel, holding, into)
                await channel.queue_delete(holding, if_empty=True)
            say(f"{queue}: {queue_type}, {moved[queue]} messages moved")
    finally:
        await target.close()
        await connection.close()
    return moved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.queues", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="each durable queue against AMQP_QUEUE_TYPE (or --type)").add_argument(
        "--type", choices=("classic", "quorum"))
    migrate_parser = sub.add_parser("migrate", help="redeclare the durable queues as --to, keeping their messages")
    migrate_parser.add_argument("--to", required=True, choices=("classic", "quorum"))
    args = parser.parse_args(argv)
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if args.command == "status":
        queue_type, limit = queue_settings(args.type)
        states = asyncio.run(status(url, queue_type, limit))
        for name, state in states.items():
            print(f"{name:<60} {state}")
        sys.exit(0 if all(state == "same" for state in states.values()) else 1)
    queue_type, limit = queue_settings(args.to)
    moved = asyncio.run(migrate(url, queue_type, limit))
    say(f"done: {len(moved)} queues redeclared as {queue_type}, {sum(moved.values())} messages moved")


if __name__ == "__main__":
    main()
