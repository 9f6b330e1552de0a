"""Inspect and replay dead-lettered events.

    python -m common.dlq list                      # every dead-letter queue and its depth
    python -m common.dlq show  <queue> [--limit N] # reasons and bodies, left in place
    python -m common.dlq replay <queue>            # move them back to <queue> for another try

``<queue>`` is the consumer's queue, e.g. ``AiReplyRequestedEvent.ai``. Uses ``AMQP_URL``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os

import aio_pika
from aio_pika import DeliveryMode, Message

from common.bus import dead_letter_queue
from common.topology import durable_queues


async def depths(url: str) -> dict[str, int]:
    connection = await aio_pika.connect_robust(url)
    try:
        channel = await connection.channel()
        result = {}
        for _, queue in durable_queues():
            # passive: never create one, nor clash with the queue type the services declared
            q = await channel.declare_queue(dead_letter_queue(queue), passive=True)
            result[q.name] = q.declaration_result.message_count
        return result
    finally:
        await connection.close()


async def show(url: str, queue: str, limit: int = 20) -> list[dict]:
    connection = await aio_pika.connect_robust(url)
    shown = []
    try:
        channel = await connection.channel()
        dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        held = []
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            shown.append({"reason": _reason(message.headers or {}),
                          "at": (message.headers or {}).get("x-dead-lettered-at"),
                          "type": message.type, "body": message.body.decode(errors="replace")[:2000]})
        for message in held:
            await message.nack(requeue=True)
    finally:
        await connection.close()
    return shown


def _reason(headers: dict) -> str | None:
    """Ours, or the broker's (a quorum queue's delivery limit: ``x-death``)."""
    if headers.get("x-dead-letter-reason"):
        return headers["x-dead-letter-reason"]
    for death in headers.get("x-death") or []:
        return f"broker: {death.get('reason')} in {death.get('queue')} after {death.get('count')}"
    return None


async def replay(url: str, queue: str) -> int:
    """Move every dead-lettered message of ``queue`` back to it, with a fresh retry budget."""
    connection = await aio_pika.connect_robust(url)
    moved = 0
    try:
        channel = await connection.channel(publisher_confirms=True)
        dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        while True:
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items()
                       if not k.startswith("x-dead") and k not in ("x-attempt", "x-original-queue")}
            await channel.default_exchange.publish(Message(
                message.body, content_type=message.content_type, type=message.type,
                message_id=message.message_id, correlation_id=message.correlation_id, headers=headers,
                delivery_mode=DeliveryMode.PERSISTENT), routing_key=queue)
            await message.ack()  # only after the broker confirmed the copy
            moved += 1
    finally:
        await connection.close()
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["list", "show", "replay"])
    parser.add_argument("queue", nargs="?")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    if args.command == "list":
        for name, count in asyncio.run(depths(url)).items():
            print(f"{count:8d}  {name}")
    elif not args.queue:
        parser.error("name the consumer queue, e.g. AiReplyRequestedEvent.ai")
    elif args.command == "show":
        print(json.dumps(asyncio.run(show(url, args.queue, args.limit)), indent=2))
    else:
        print(f"replayed {asyncio.run(replay(url, args.queue))} message(s) to {args.queue}")


if __name__ == "__main__":
    main()
