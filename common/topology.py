"""Which service consumes which event: the durable half of the broker topology.

Every service declares all of it when it connects, so an event published before its
consumer first started still waits in that consumer's queue instead of being dropped.
"""
from __future__ import annotations

from common import events as ev

SUBSCRIPTIONS: dict[str, tuple[type[ev.Event], ...]] = {
    "gateway": (ev.VisitorDataErasedEvent,),
    "conversation": (
        ev.VisitorMessageReceivedEvent,
        ev.AiReplyCompletedEvent,
        ev.AiReplyFailedEvent,
        ev.AvatarAnimationSelectedEvent,
        ev.FeedbackGivenEvent,
        ev.HandoffRequestedEvent,
        ev.ChatbotDeletedEvent,
        ev.TenantDeletedEvent,
        ev.VisitorDataErasureRequestedEvent,
    ),
    "ai": (ev.AiReplyRequestedEvent, ev.ReplyCancelRequestedEvent, ev.ChatbotDeletedEvent, ev.TenantDeletedEvent,
           ev.VisitorDataErasedEvent),
    "knowledge": (ev.DocumentIngestRequestedEvent, ev.ChatbotDeletedEvent, ev.TenantDeletedEvent),
    "avatar": (ev.AiReplyCompletedEvent, ev.ChatbotDeletedEvent, ev.TenantDeletedEvent, ev.VisitorDataErasedEvent),
    # analytics records every durable event; token chunks and start markers are transient
    # copies of what the completion event carries in full.
    "analytics": tuple(cls for cls in ev.EVENT_TYPES.values() if not cls.transient),
}


def queue_name(event_cls: type[ev.Event] | str, service: str) -> str:
    name = event_cls if isinstance(event_cls, str) else event_cls.name()
    return f"{name}.{service}"


def durable_queues() -> list[tuple[str, str]]:
    """(event name, queue name) for every durable subscription of every service."""
    return [(cls.name(), queue_name(cls, service))
            for service, classes in SUBSCRIPTIONS.items() for cls in classes]
