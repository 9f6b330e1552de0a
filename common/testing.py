"""An in-memory bus with the real bus's API, for handler and use-case tests that need no
RabbitMQ: ``publish``, ``subscribe`` (checked against ``common/topology.py`` like the real
one), ``start_consuming``, and the per-process stream queue (``open_stream``, ``bind_stream``,
``unbind_stream``).

``publish`` hands a durable event to every subscription of its class and awaits the handlers
(an exception propagates, where the real bus would retry); a stream event goes to the stream
handler when its routing key is bound. ``published`` keeps every event, in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from common.events import STREAM_EVENTS, Event
from common.topology import SUBSCRIPTIONS


class MemoryBusError(RuntimeError):
    pass


@dataclass
class MemorySubscription:
    event_cls: type[Event]
    handler: Callable[[Any], Awaitable[None]]
    options: dict


class MemoryBus:
    def __init__(self, service: str = "test", *, check_topology: bool = True) -> None:
        self.service = service
        self.check_topology = check_topology
        self.published: list[Event] = []
        self.subscriptions: list[MemorySubscription] = []
        self.consuming = False
        self._stream_handler: Callable[[Event], Awaitable[None]] | None = None
        self._stream_events: tuple[type[Event], ...] = STREAM_EVENTS
        self._stream_bindings: dict[str, int] = {}

    # the lifecycle calls the real bus has
    async def connect(self) -> None: ...

    async def close(self) -> None:
        self.consuming = False

    @property
    def is_connected(self) -> bool:
        return True

    @property
    def held(self) -> dict[str, float]:
        return {}

    def add_probe(self, *_args, **_kwargs) -> None: ...

    def on_reconnect(self, _callback) -> None: ...

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        self.published.append(event)
        if self.consuming:
            for sub in self.subscriptions:
                if isinstance(event, sub.event_cls):
                    await sub.handler(event)
        if (self._stream_handler is not None and isinstance(event, self._stream_events)
                and self._stream_bindings.get(event.routing_key())):
            await self._stream_handler(event)

    def of(self, event_cls: type[Event]) -> list[Event]:
        """The events of one class published so far."""
        return [e for e in self.published if isinstance(e, event_cls)]

    # --- consuming -------------------------------------------------------------------------

    def subscribe(self, event_cls: type[Event], handler: Callable[[Any], Awaitable[None]], **options) -> None:
        if self.check_topology and event_cls not in SUBSCRIPTIONS.get(self.service, ()):
            raise MemoryBusError(f"{self.service} does not subscribe to {event_cls.name()} in common/topology.py")
        self.subscriptions.append(MemorySubscription(event_cls, handler, options))

    async def start_consuming(self) -> None:
        self.consuming = True

    async def stop_consuming(self, timeout: float = 0) -> None:
        self.consuming = False

    # --- the per-process stream queue ------------------------------------------------------

    async def open_stream(self, handler: Callable[[Event], Awaitable[None]],
                          events: tuple[type[Event], ...] = STREAM_EVENTS) -> None:
        self._stream_handler = handler
        self._stream_events = events

    async def bind_stream(self, routing_key: str) -> None:
        self._stream_bindings[routing_key] = self._stream_bindings.get(routing_key, 0) + 1

    async def unbind_stream(self, routing_key: str) -> None:
        count = self._stream_bindings.get(routing_key, 0) - 1
        if count > 0:
            self._stream_bindings[routing_key] = count
        else:
            self._stream_bindings.pop(routing_key, None)
