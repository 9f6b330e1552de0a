"""The event bus on aio-pika.

- One durable topic exchange per event class, named after the class. Routing keys are the
  conversation id (or the tenant id), so a gateway can bind just the conversations it streams.
- One durable queue per (event class, subscribing service): ``<EventClass>.<service>``; replicas
  of a service compete on it. Retries go through ``<queue>.retry`` (a per-message TTL, then
  back to the queue) a bounded number of times, then to ``<queue>.dlq`` with the reason.
- Persistent messages (except transient stream events), publisher confirms, and
  ``mandatory`` publishing so an event no queue takes raises instead of vanishing.
- Messages are acked only after the handler returned, i.e. after its transaction committed.
- Gateways bind an exclusive, server-named queue per process for stream events.
- ``AMQP_QUEUE_TYPE``: the durable queues are ``classic`` (one broker node) or ``quorum``
  (replicated over a cluster, with a delivery limit); the stream queues stay exclusive and
  transient either way. ``python -m scripts.queues migrate --to quorum`` moves a deployment.
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import aio_pika
import aiormq.exceptions
from aio_pika import DeliveryMode, ExchangeType, Message
from aio_pika.abc import (AbstractChannel, AbstractExchange, AbstractIncomingMessage,
                          AbstractQueue, AbstractRobustConnection)
from pydantic import ValidationError

from common import metrics
from common.availability import BROKER, DependencyUnavailable, unavailable_dependency
from common.events import EVENT_TYPES, STREAM_EVENTS, Event
from common.handlers import Defer  # noqa: F401 - handlers raise it; the bus parks the event
from common.logging import bound_contextvars, get_logger
from common.topology import SUBSCRIPTIONS, durable_queues, queue_name

log = get_logger(__name__)

Handler = Callable[[Any], Awaitable[None]]


class BusError(RuntimeError):
    """The broker did not take an event (not connected, connection lost, not confirmed, not
    routed). The only error ``publish`` raises."""


# what a publish can meet when the broker or the connection goes away mid-call
PUBLISH_FAILURES = (aio_pika.exceptions.AMQPError, aiormq.exceptions.AMQPError, ConnectionError,
                    asyncio.TimeoutError, RuntimeError)


@dataclass
class _Subscription:
    event_cls: type[Event]
    handler: Handler
    queue: str
    prefetch: int
    # events with the same key are handled one at a time, in delivery order
    ordered_by: Callable[[Any], Any] | None = None


Probe = Callable[[], Awaitable[Any]]
# seconds between looks at a dependency that is away: quick at first, then every 3 s. A look
# is one connection attempt (cheap, and logged only when the hold starts and ends); a longer
# step would add up to that much to every held message once the dependency is back.
HOLD_BACKOFF_S = (0.5, 1, 2, 3)


def retry_queue(queue: str) -> str:
    return f"{queue}.retry"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


QUEUE_TYPES = ("classic", "quorum")
# deliveries of one message (redeliveries after a crashed or lost consumer) before a quorum queue
# dead-letters it: a message that kills its consumer every time must not loop forever. Retries of
# a failing handler never count here (each retry is a new message, see ``_copy_to``).
DEFAULT_DELIVERY_LIMIT = 20  # also ServiceSettings.amqp_delivery_limit's default


def queue_settings(queue_type: str | None = None, delivery_limit: int | None = None) -> tuple[str, int]:
    """The queue type and delivery limit: given, or ``AMQP_QUEUE_TYPE`` / ``AMQP_DELIVERY_LIMIT``."""
    queue_type = (queue_type or os.environ.get("AMQP_QUEUE_TYPE") or "classic").strip().lower()
    if queue_type not in QUEUE_TYPES:
        raise BusError(f"AMQP_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, not {queue_type!r}")
    if delivery_limit is None:
        delivery_limit = int(os.environ.get("AMQP_DELIVERY_LIMIT") or DEFAULT_DELIVERY_LIMIT)
    return queue_type, delivery_limit


def durable_queue_arguments(queue: str, queue_type: str, delivery_limit: int) -> list[tuple[str, dict | None]]:
    """(name, declaration arguments) of ``queue``, its retry queue and its dead-letter queue, dead-letter
    queue first (the others dead-letter into it).

    Classic queues keep the arguments they always had, so existing deployments redeclare them
    unchanged. Quorum queues are replicated; their broker-side dead-lettering is at-least-once
    (a copy is confirmed before the original goes), which needs ``reject-publish`` overflow.
    """
    retry_to_queue = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
    if queue_type == "classic":
        return [(dead_letter_queue(queue), None), (retry_queue(queue), retry_to_queue), (queue, None)]
    quorum = {"x-queue-type": "quorum"}
    safe_dead_lettering = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    return [
        (dead_letter_queue(queue), quorum),
        (retry_queue(queue), {**quorum, **retry_to_queue, **safe_dead_lettering}),
        (queue, {**quorum, "x-delivery-limit": delivery_limit, "x-dead-letter-exchange": "",
                 "x-dead-letter-routing-key": dead_letter_queue(queue), **safe_dead_lettering}),
    ]


class Bus:
    def __init__(self, url: str, service: str, *, prefetch: int = 64, max_retries: int = 5,
                 retry_delay_ms: int = 500, queue_type: str | None = None, delivery_limit: int | None = None):
        self.url = url
        self.service = service
        self.queue_type, self.delivery_limit = queue_settings(queue_type, delivery_limit)
        self.prefetch = prefetch
        self.max_retries = max_retries
        self.retry_delay_ms = retry_delay_ms
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._subscriptions: list[_Subscription] = []
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._durable_consumers: list[tuple[_Subscription, AbstractQueue, str]] = []
        self._inflight: set[asyncio.Task] = set()
        # dependency holds: while a dependency is away, this process takes no events
        self._key_locks: dict[Any, asyncio.Lock] = {}
        self._probes: dict[str, Probe] = {BROKER: self._probe_broker}
        self._on_back: dict[str, Probe] = {}
        self._held: dict[str, float] = {}          # dependency -> since (monotonic)
        self._hold_task: asyncio.Task | None = None
        self._stopping = False
        self._stream_queue: AbstractQueue | None = None
        self._stream_bindings: dict[str, int] = {}
        self._stream_events: tuple[type[Event], ...] = STREAM_EVENTS
        self._depth_task: asyncio.Task | None = None
        self.depth_interval = 5.0

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url, client_properties={
            "connection_name": f"avatarchat-{self.service}"})
        self._publish_channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True)
        await self.declare_topology()

    @property
    def is_connected(self) -> bool:
        return bool(self.connection and not self.connection.is_closed
                    and self._publish_channel and not self._publish_channel.is_closed)

    async def close(self) -> None:
        await self.stop_consuming()
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    async def declare_topology(self) -> None:
        """Declare every exchange and every service's durable queues (idempotent)."""
        channel = self._publish_channel
        assert channel is not None
        for name in EVENT_TYPES:
            await self._exchange(name)
        for event_name, queue in durable_queues():
            for name, arguments in self.queue_arguments(queue):
                q = await channel.declare_queue(name, durable=True, arguments=arguments)
            await q.bind(self._exchanges[event_name], routing_key="#")

    def queue_arguments(self, queue: str) -> list[tuple[str, dict | None]]:
        return durable_queue_arguments(queue, self.queue_type, self.delivery_limit)

    async def _exchange(self, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            assert self._publish_channel is not None, "Bus.connect() first"
            exchange = await self._publish_channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)
            self._exchanges[name] = exchange
        return exchange

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        await self.publish_raw(event.name(), event.routing_key(), event.model_dump(mode="json"))

    async def publish_raw(self, event_type: str, routing_key: str, body: dict) -> None:
        cls = EVENT_TYPES[event_type]
        message = Message(
            json.dumps(body, separators=(",", ":")).encode(),
            content_type="application/json",
            type=event_type,
            message_id=str(body["event_id"]),
            correlation_id=body.get("correlation_id"),
            delivery_mode=DeliveryMode.NOT_PERSISTENT if cls.transient else DeliveryMode.PERSISTENT,
        )
        if self._publish_channel is None or self._publish_channel.is_closed:
            raise BusError(f"{event_type} was not published") from DependencyUnavailable(BROKER, "not connected")
        try:
            exchange = await self._exchange(event_type)
            # Transient stream events go only to gateways that stream the conversation, if any.
            await exchange.publish(message, routing_key=routing_key, mandatory=not cls.transient)
        except aio_pika.exceptions.PublishError as exc:
            raise BusError(f"{event_type} was not routed to any queue") from exc
        except PUBLISH_FAILURES as exc:
            # one error for callers: "the broker did not take it"; the cause stays attached, so
            # common.availability still sees a broker outage behind it
            raise BusError(f"{event_type} was not published: {exc!r}") from exc
        metrics.EVENTS_PUBLISHED.labels(self.service, event_type).inc()

    # --- consuming -------------------------------------------------------------------------

    def subscribe(self, event_cls: type[Event], handler: Handler, *, prefetch: int | None = None,
                  ordered_by: Callable[[Any], Any] | None = None) -> None:
        """Register ``handler`` for ``event_cls`` on this service's durable queue.

        The handler must be idempotent (see ``common.db.claim``); the message is acked when it
        returns, retried when it raises. With ``ordered_by`` (e.g. the conversation id), events
        with the same key run one after the other in the order the queue delivered them, while
        events of different keys still run side by side.
        """
        if event_cls not in SUBSCRIPTIONS.get(self.service, ()):
            raise BusError(f"{self.service} does not subscribe to {event_cls.name()} in common/topology.py")
        self._subscriptions.append(_Subscription(
            event_cls, handler, queue_name(event_cls, self.service), prefetch or self.prefetch, ordered_by))

    async def start_consuming(self) -> None:
        assert self.connection is not None
        self._stopping = False
        for sub in self._subscriptions:
            channel = await self.connection.channel()
            await channel.set_qos(prefetch_count=sub.prefetch)
            queue = await channel.declare_queue(sub.queue, durable=True,
                                                arguments=dict(self.queue_arguments(sub.queue))[sub.queue])
            tag = await queue.consume(self._consumer(sub))
            self._durable_consumers.append((sub, queue, tag))
            log.info("consuming", queue=sub.queue)
        if self._subscriptions and self._depth_task is None:
            self._depth_task = asyncio.create_task(self._watch_depths(), name="queue-depths")

    # --- holding while a dependency is away ------------------------------------------------

    def add_probe(self, dependency: str, probe: Probe, *, on_back: Probe | None = None) -> None:
        """``probe()`` succeeds when ``dependency`` answers again (the service's database...);
        ``on_back()`` runs once it does (e.g. replace a pool's connections to the old server)."""
        self._probes[dependency] = probe
        if on_back is not None:
            self._on_back[dependency] = on_back

    @property
    def held(self) -> dict[str, float]:
        """Dependencies this process is waiting for, with seconds waited so far."""
        now = asyncio.get_running_loop().time()
        return {name: round(now - since, 1) for name, since in self._held.items()}

    async def _probe_broker(self) -> None:
        if not self.is_connected:
            raise ConnectionError("not connected to RabbitMQ")

    async def _hold(self, dependency: str, error: BaseException) -> None:
        """Stop taking events until ``dependency`` answers. The failing message goes back to
        its queue untouched (no retry counted); the consumers are cancelled first, so it is not
        handed straight back to us (no hot loop), and other replicas may still take it."""
        loop = asyncio.get_running_loop()
        if dependency not in self._held:
            self._held[dependency] = loop.time()
            metrics.DEPENDENCY_UP.labels(self.service, dependency).set(0)
            log.warning("consumers_held", dependency=dependency, error=repr(error)[:300])
        if self._hold_task is None or self._hold_task.done():
            self._hold_task = asyncio.create_task(self._wait_for_dependencies(), name="bus-hold")
            metrics.CONSUMERS_HELD.labels(self.service).set(1)
            await self._cancel_consumers()

    async def _cancel_consumers(self) -> None:
        for _sub, queue, tag in self._durable_consumers:
            try:
                await queue.cancel(tag)
            except Exception:  # noqa: BLE001 - the channel may be gone with the broker
                pass

    async def _wait_for_dependencies(self) -> None:
        attempt = 0
        while self._held and not self._stopping:
            await asyncio.sleep(HOLD_BACKOFF_S[min(attempt, len(HOLD_BACKOFF_S) - 1)])
            attempt += 1
            for dependency in list(self._held):
                probe = self._probes.get(dependency)
                try:
                    if probe is not None:
                        await asyncio.wait_for(probe(), 5)
                    await self._probe_broker()  # nothing resumes without the broker
                except Exception:  # noqa: BLE001 - still away: look again later
                    continue
                since = self._held.pop(dependency)
                if dependency in self._on_back:
                    try:
                        await self._on_back[dependency]()
                    except Exception:  # noqa: BLE001 - only an optimisation
                        log.debug("on_back_failed", dependency=dependency, exc_info=True)
                metrics.DEPENDENCY_UP.labels(self.service, dependency).set(1)
                log.info("dependency_back", dependency=dependency,
                         held_s=round(asyncio.get_running_loop().time() - since, 1))
        if self._stopping:
            return
        resumed = []
        for index, (sub, queue, _old) in enumerate(self._durable_consumers):
            try:
                tag = await queue.consume(self._consumer(sub))
            except Exception as exc:  # noqa: BLE001 - the broker went away again: hold for it
                self._hold_task = None
                self._held.setdefault(BROKER, asyncio.get_running_loop().time())
                log.warning("consumers_resume_failed", error=repr(exc)[:200])
                self._hold_task = asyncio.create_task(self._wait_for_dependencies(), name="bus-hold")
                return
            self._durable_consumers[index] = (sub, queue, tag)
            resumed.append(sub.queue)
        metrics.CONSUMERS_HELD.labels(self.service).set(0)
        log.info("consumers_resumed", queues=len(resumed))

    def _consumer(self, sub: _Subscription) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            self._inflight.add(task)
            try:
                await self._handle(sub, message)
            finally:
                self._inflight.discard(task)
        return on_message

    async def _handle(self, sub: _Subscription, message: AbstractIncomingMessage) -> None:
        name = sub.event_cls.name()
        try:
            event = sub.event_cls.model_validate_json(message.body)
        except ValidationError as exc:
            await self._dead_letter(sub.queue, message, f"malformed event: {exc.errors()[:3]}")
            metrics.EVENTS_DEAD_LETTERED.labels(self.service, name).inc()
            await message.ack()
            return
        with bound_contextvars(correlation_id=event.correlation_id, event=name,
                               event_id=str(event.event_id), tenant_id=str(event.tenant_id)):
            try:
                await self._run_handler(sub, event)
            except asyncio.CancelledError:
                await self._requeue(message)
                raise
            except Exception as exc:  # noqa: BLE001 - held, or retried then dead-lettered
                if isinstance(exc, Defer):
                    await self._defer(sub, message, exc)
                    return
                dependency = unavailable_dependency(exc)
                if dependency is not None:
                    # not this event's fault: it goes back untouched and waits for the dependency
                    await self._hold(dependency, exc)
                    await self._requeue(message)
                    metrics.EVENTS_HELD.labels(self.service, name, dependency).inc()
                    return
                await self._retry_or_dead_letter(sub, message, exc)
                return
            await message.ack()
            metrics.EVENTS_CONSUMED.labels(self.service, name).inc()

    async def _run_handler(self, sub: _Subscription, event: Event) -> None:
        if sub.ordered_by is None:
            await sub.handler(event)
            return
        # asyncio.Lock wakes waiters first come, first served, and deliveries start their
        # tasks in delivery order: same-key events run in the order the queue gave them
        key = sub.ordered_by(event)
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                await sub.handler(event)
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._key_locks.pop(key, None)

    async def _defer(self, sub: _Subscription, message: AbstractIncomingMessage, deferral: Defer) -> None:
        """Back through the retry queue after the delay, its attempt count unchanged."""
        try:
            await self._copy_to(retry_queue(sub.queue), message, {}, expiration_ms=max(1, int(deferral.delay_s * 1000)))
        except Exception:  # noqa: BLE001 - could not park it: let the broker give it back
            await self._requeue(message)
            return
        await message.ack()
        metrics.EVENTS_DEFERRED.labels(self.service, sub.event_cls.name()).inc()

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        try:
            await message.nack(requeue=True)
        except Exception:  # channel already gone: the broker redelivers unacked messages
            pass

    async def _retry_or_dead_letter(self, sub: _Subscription, message: AbstractIncomingMessage,
                                    exc: Exception) -> None:
        name = sub.event_cls.name()
        attempt = int((message.headers or {}).get("x-attempt", 0)) + 1
        try:
            if attempt > self.max_retries:
                log.error("handler_failed_dead_lettered", queue=sub.queue, attempt=attempt, error=repr(exc))
                await self._dead_letter(sub.queue, message, f"handler failed {attempt} times: {exc!r}")
                metrics.EVENTS_DEAD_LETTERED.labels(self.service, name).inc()
            else:
                delay = min(self.retry_delay_ms * 2 ** (attempt - 1), 60_000)
                log.warning("handler_failed_retrying", queue=sub.queue, attempt=attempt,
                            delay_ms=delay, error=repr(exc), exc_info=exc)
                await self._copy_to(retry_queue(sub.queue), message, {"x-attempt": attempt},
                                    expiration_ms=delay)
                metrics.EVENTS_RETRIED.labels(self.service, name).inc()
        except Exception:
            log.error("retry_publish_failed", queue=sub.queue, exc_info=True)
            await self._requeue(message)
            return
        await message.ack()

    async def _dead_letter(self, queue: str, message: AbstractIncomingMessage, reason: str) -> None:
        await self._copy_to(dead_letter_queue(queue), message, {
            "x-dead-letter-reason": reason[:2000],
            "x-original-queue": queue,
            "x-dead-lettered-at": datetime.now(timezone.utc).isoformat(),
        })

    async def _copy_to(self, queue: str, message: AbstractIncomingMessage, headers: dict,
                       expiration_ms: int | None = None) -> None:
        assert self._publish_channel is not None
        copy = Message(
            message.body,
            content_type=message.content_type,
            type=message.type,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            headers={**(message.headers or {}), **headers},
            delivery_mode=DeliveryMode.PERSISTENT,
            expiration=expiration_ms / 1000 if expiration_ms else None,
        )
        await self._publish_channel.default_exchange.publish(copy, routing_key=queue)

    async def queue_depths(self) -> dict[str, int]:
        """Messages ready in each queue this process consumes, and in their dead-letter queues,
        from passive declarations (which never create a queue)."""
        assert self.connection is not None
        depths: dict[str, int] = {}
        channel = await self.connection.channel()
        try:
            for sub in self._subscriptions:
                for name in (sub.queue, dead_letter_queue(sub.queue)):
                    queue = await channel.declare_queue(name, passive=True)
                    depths[name] = queue.declaration_result.message_count or 0
        finally:
            await channel.close()
        return depths

    async def _watch_depths(self) -> None:
        """Refresh the queue depth gauge every few seconds while consuming."""
        while True:
            try:
                for name, depth in (await self.queue_depths()).items():
                    metrics.QUEUE_DEPTH.labels(self.service, name).set(depth)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - broker away for a moment; the next round retries
                log.debug("queue_depth_failed", exc_info=True)
            await asyncio.sleep(self.depth_interval)

    async def stop_consuming(self, timeout: float = 20.0) -> None:
        """Stop taking new messages, then let in-flight handlers finish (graceful shutdown)."""
        self._stopping = True
        if self._depth_task is not None:
            self._depth_task.cancel()
            self._depth_task = None
        if self._hold_task is not None:
            self._hold_task.cancel()
            self._hold_task = None
        await self._cancel_consumers()
        self._durable_consumers.clear()
        for queue, tag in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception:  # noqa: BLE001 - connection may already be gone
                pass
        self._consumers.clear()
        current = asyncio.current_task()
        pending = [t for t in self._inflight if t is not current]
        if pending:
            log.info("waiting_for_inflight_handlers", count=len(pending))
            await asyncio.wait(pending, timeout=timeout)

    # --- stream events for the gateway -----------------------------------------------------

    async def open_stream(self, handler: Callable[[Event], Awaitable[None]],
                          events: tuple[type[Event], ...] = STREAM_EVENTS) -> None:
        """An exclusive queue for this process, taking ``events`` (the gateway: the stream
        events; ai: cancel requests) of the conversations bound with ``bind_stream``. No ack,
        no retry: what must not be lost also goes to a durable queue."""
        assert self.connection is not None
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=256)
        self._stream_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        self._stream_events = events
        for cls in events:
            await self._exchange(cls.name())

        async def on_message(message: AbstractIncomingMessage) -> None:
            cls = EVENT_TYPES.get(message.type or "")
            if cls is None:
                return
            try:
                event = cls.model_validate_json(message.body)
            except ValidationError:
                log.warning("malformed_stream_event", type=message.type)
                return
            try:
                await handler(event)
            except Exception:  # noqa: BLE001 - one broken stream must not stop the others
                log.error("stream_handler_failed", exc_info=True)

        tag = await self._stream_queue.consume(on_message, no_ack=True)
        self._consumers.append((self._stream_queue, tag))

    def on_reconnect(self, callback: Callable[[], Any]) -> None:
        """``callback()`` runs each time the connection to the broker came back. Transient
        stream events published while it was away are gone; the gateway closes its SSE
        streams then, and each client reconnects with Last-Event-ID, which replays what it missed."""
        assert self.connection is not None

        def fire(*_args) -> None:
            log.info("broker_reconnected")
            callback()
        self.connection.reconnect_callbacks.add(fire)

    async def bind_stream(self, routing_key: str) -> None:
        assert self._stream_queue is not None, "open_stream() first"
        count = self._stream_bindings.get(routing_key, 0)
        self._stream_bindings[routing_key] = count + 1
        if count == 0:
            for cls in self._stream_events:
                await self._stream_queue.bind(self._exchanges[cls.name()], routing_key=routing_key)

    async def unbind_stream(self, routing_key: str) -> None:
        count = self._stream_bindings.get(routing_key, 0) - 1
        if count > 0:
            self._stream_bindings[routing_key] = count
            return
        self._stream_bindings.pop(routing_key, None)
        if self._stream_queue is None or not self.is_connected:
            return
        for cls in self._stream_events:
            try:
                await self._stream_queue.unbind(self._exchanges[cls.name()], routing_key=routing_key)
            except Exception:  # noqa: BLE001 - the exclusive queue dies with the connection anyway
                pass
