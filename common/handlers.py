"""The one way a service wires its event handlers.

Each service's ``handlers.py`` exports ``REGISTRY = {EventClass: [on_x, ...]}``, where every
handler is ``async def on_<event>(event, *, deps)``, and ``bootstrap(settings, pool, bus)``
builds the ``deps`` they share. ``common.web.service_context`` takes both and subscribes every
handler of the registry on the service's durable queue for its event class; tests call the
same handlers with the same deps (or with ``common.testing.MemoryBus``).

What a handler writes is said where it is written, ``@touches("messages", ...)``, and so are
two things a handler may ask of its queue:
``@ordered_by(key)`` (events with the same key run one after the other, in delivery order) and
``@prefetch(n)`` (how many deliveries this queue takes at once; ``n`` may read the deps).
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Awaitable, Callable

from common.events import Event
from common.logging import get_logger

log = get_logger(__name__)

Handler = Callable[..., Awaitable[None]]
Registry = Mapping[type[Event], Sequence[Handler]]


class Defer(Exception):
    """Raised by a handler for an event that cannot be handled *yet* (its predecessor in a
    conversation has not arrived): it comes back after ``delay_s``, without counting as a
    failed attempt."""

    def __init__(self, delay_s: float, reason: str = ""):
        super().__init__(reason or f"deferred for {delay_s} s")
        self.delay_s = delay_s


def ordered_by(key: Callable[[Any], Any]) -> Callable[[Handler], Handler]:
    def mark(handler: Handler) -> Handler:
        handler.ordered_by = key  # type: ignore[attr-defined]
        return handler
    return mark


def touches(*tables: str) -> Callable[[Handler], Handler]:
    """The tables of its service a handler writes (besides the inbox, processed_events, which
    every handler writes): docs/architecture.md's event table is generated from it."""
    def mark(handler: Handler) -> Handler:
        handler.tables = tables  # type: ignore[attr-defined]
        return handler
    return mark


def prefetch(count: int | Callable[[Any], int]) -> Callable[[Handler], Handler]:
    """``count`` may be a function of the deps (a setting, say)."""
    def mark(handler: Handler) -> Handler:
        handler.prefetch = count  # type: ignore[attr-defined]
        return handler
    return mark


def bound(handlers: Sequence[Handler], deps: Any) -> Handler:
    """One queue consumer for an event class: its handlers in order, each given ``deps``."""
    calls = [partial(h, deps=deps) for h in handlers]

    async def handle(event: Event) -> None:
        for call in calls:
            await call(event)
    return handle


def subscribe_all(bus: Any, registry: Registry, deps: Any) -> None:
    """Subscribe every event class of ``registry`` on ``bus`` (the real one or MemoryBus)."""
    for event_cls, handlers in registry.items():
        options: dict[str, Any] = {}
        for handler in handlers:
            if getattr(handler, "ordered_by", None) is not None:
                options["ordered_by"] = handler.ordered_by
            count = getattr(handler, "prefetch", None)
            if count is not None:
                options["prefetch"] = count(deps) if callable(count) else count
        bus.subscribe(event_cls, bound(handlers, deps), **options)


class Periodic:
    """Run ``work()`` every ``interval_s`` seconds until ``stop()``, which cancels the task and
    waits for it. A failing round is logged and the next one runs as planned."""

    def __init__(self, name: str, work: Callable[[], Awaitable[Any]], interval_s: float, *,
                 run_first: bool = False) -> None:
        self.name, self.work, self.interval_s, self.run_first = name, work, interval_s, run_first
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        if not self.run_first:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                await self.work()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("periodic_work_failed", work=self.name, exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None


def periodic(name: str, work: Callable[[Any], Awaitable[Any]], interval_s: float, *, run_first: bool = False):
    """A ``cleanup_ctx`` running ``work(app)`` every ``interval_s`` while the app runs."""
    async def ctx(app):
        runner = Periodic(name, lambda: work(app), interval_s, run_first=run_first)
        runner.start()
        yield
        await runner.stop()
    return ctx
