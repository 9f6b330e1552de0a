"""Every service has one shape: handlers.py exports REGISTRY {EventClass: [on_x, ...]} with
handlers ``on_<event>(event, *, deps)`` and a ``bootstrap(settings, pool, bus)``; the registry
covers exactly what common/topology.py says the service consumes. And the in-memory bus
(common.testing) delivers like the real one, without RabbitMQ or Postgres."""
from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import uuid

import pytest

from common import events as ev
from common.handlers import Periodic, subscribe_all
from common.testing import MemoryBus, MemoryBusError
from common.topology import SUBSCRIPTIONS

SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Event")).lower()


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_registers_a_handler_for_exactly_the_events_it_consumes(service):
    handlers = importlib.import_module(f"services.{service}.handlers")
    assert set(handlers.REGISTRY) == set(SUBSCRIPTIONS[service])
    assert list(inspect.signature(handlers.bootstrap).parameters)[:3] == ["settings", "pool", "bus"]
    for event_cls, functions in handlers.REGISTRY.items():
        assert functions, event_cls
        for function in functions:
            # analytics records every other event with its one on_event
            assert function.__name__ in (f"on_{snake(event_cls.__name__)}", "on_event"), function.__name__
            params = inspect.signature(function).parameters
            assert list(params) == ["event", "deps"] and params["deps"].kind is inspect.Parameter.KEYWORD_ONLY


def test_analytics_erases_on_lifecycle_events_instead_of_keeping_a_copy():
    from services.analytics import handlers
    for event_cls in ev.LIFECYCLE_EVENTS:
        assert handlers.REGISTRY[event_cls] != [handlers.on_event], event_cls
    assert handlers.REGISTRY[ev.HandoffRequestedEvent] == [handlers.on_event]


async def test_the_memory_bus_refuses_what_the_topology_does_not_list():
    bus = MemoryBus("avatar")
    with pytest.raises(MemoryBusError):
        bus.subscribe(ev.FeedbackGivenEvent, lambda event: None)


async def test_subscribe_all_passes_each_handlers_queue_options_and_its_deps():
    from services.conversation import handlers
    bus = MemoryBus("conversation")
    seen = []

    async def on_handoff_requested(event, *, deps):
        seen.append((event, deps))
    subscribe_all(bus, {**handlers.REGISTRY, ev.HandoffRequestedEvent: [on_handoff_requested]}, "the deps")
    options = {s.event_cls: s.options for s in bus.subscriptions}
    conversation_id = uuid.uuid4()
    assert options[ev.VisitorMessageReceivedEvent]["ordered_by"](
        ev.HandoffRequestedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=conversation_id,
                                 visitor_id=uuid.uuid4())) == conversation_id
    await bus.start_consuming()
    event = ev.HandoffRequestedEvent(tenant_id=uuid.uuid4(), chatbot_id=uuid.uuid4(), conversation_id=conversation_id,
                                     visitor_id=uuid.uuid4())
    await bus.publish(event)
    assert seen == [(event, "the deps")]


async def test_a_cancel_reaches_the_ai_process_streaming_that_conversation_and_no_other():
    """ai's bootstrap opens the process's stream queue for cancel requests; generate_reply binds
    the conversation while it streams (here: bound by hand)."""
    from services.ai import handlers
    from services.ai.settings import Settings
    bus = MemoryBus("ai")
    deps = await handlers.bootstrap(Settings(), None, bus)
    try:
        tenant, conversation, reply = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        stop = deps.cancels.track(tenant, reply)
        cancel = ev.ReplyCancelRequestedEvent(tenant_id=tenant, chatbot_id=uuid.uuid4(), conversation_id=conversation,
                                              reply_id=reply)
        await bus.publish(cancel)
        assert not stop.is_set()  # this process is not streaming that conversation
        await bus.bind_stream(str(conversation))
        await bus.publish(ev.ReplyCancelRequestedEvent(**{**cancel.model_dump(), "tenant_id": uuid.uuid4(),
                                                          "event_id": uuid.uuid4()}))
        assert not stop.is_set()  # another tenant's request names no reply of ours
        await bus.publish(cancel)
        assert stop.is_set()
    finally:
        await deps.close()


async def test_periodic_work_runs_again_after_a_failure_and_stops_when_told():
    runs = []

    async def work():
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("the first round fails")
    periodic = Periodic("test", work, 0.001, run_first=True)
    periodic.start()
    while len(runs) < 3:
        await asyncio.sleep(0.001)
    await periodic.stop()
    stopped_at = len(runs)
    await asyncio.sleep(0.01)
    assert len(runs) == stopped_at
