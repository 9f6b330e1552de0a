"""Every event exchanged between services: the only contract between them.

The class name is the wire name and the name of its exchange. Events are past tense and
carry the envelope ``event_id``, ``occurred_at``, ``tenant_id``, ``correlation_id``.
``transient`` events (token chunks) are not persisted by the broker: the completion event
carries the full text, so a lost chunk is repaired, never a lost reply.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.logging import current_correlation_id


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Event(Model):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)
    tenant_id: uuid.UUID
    correlation_id: str = Field(default_factory=current_correlation_id)

    transient: ClassVar[bool] = False

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    def routing_key(self) -> str:
        """Conversation events route by conversation, so a gateway binds just its visitors."""
        conversation_id = getattr(self, "conversation_id", None)
        return str(conversation_id or self.tenant_id)


# --- snapshots carried inside events ---------------------------------------------------------

class ChatbotSnapshot(Model):
    """What the reply pipeline needs to know of a chatbot, as it was when the visitor wrote."""
    chatbot_id: uuid.UUID
    name: str
    system_prompt: str = ""
    tone: str = ""
    greeting: str = ""
    fallback_answer: str = "I'm sorry, I don't know the answer to that yet."
    provider: str = "local"
    model: str = "local-extractive"
    temperature: float = 0.2
    max_tokens: int = 512
    # the fallback provider answers with its default model (ai settings)
    fallback_provider: str | None = None
    top_k: int = 5
    score_threshold: float = 0.0
    # what the widget offers first: the local responder answers "what can you help me with?" from them
    welcome_message: str = ""
    suggested_questions: list[str] = Field(default_factory=list)


class HistoryMessage(Model):
    role: Literal["visitor", "assistant"]
    text: str


# What knowledge search reads a follow-up with, besides the message itself: the visitor's
# two previous turns and the start of the assistant's last reply, oldest first (measured on
# the labelled set: services/knowledge/evaluation, docs/knowledge.md "Follow-ups").
CONTEXT_VISITOR_TURNS = 2
CONTEXT_REPLY_CHARS = 300


def search_context(history: list[HistoryMessage], *, fallback_answer: str = "") -> list[str]:
    """A reply that was the persona's fallback says nothing about the topic: it is left out."""
    visitor = [h.text for h in history if h.role == "visitor"][-CONTEXT_VISITOR_TURNS:]
    replies = [h.text[:CONTEXT_REPLY_CHARS] for h in history
               if h.role == "assistant" and h.text.strip() != fallback_answer.strip()][-1:]
    return visitor + replies


class Citation(Model):
    title: str
    url: str | None = None
    snippet: str
    score: float


class Usage(Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False


class Timings(Model):
    ttft_ms: float | None = None
    total_ms: float = 0.0
    # wall-clock time (epoch seconds) the provider produced its first token: benchmarks
    # subtract it from the moment the visitor's first delta arrived
    first_token_at: float | None = None


# --- gateway ---------------------------------------------------------------------------------

class ChatbotCreatedEvent(Event):
    chatbot: ChatbotSnapshot


class ChatbotUpdatedEvent(Event):
    chatbot: ChatbotSnapshot


class ChatbotDeletedEvent(Event):
    chatbot_id: uuid.UUID


class VisitorMessageReceivedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID
    message_id: uuid.UUID
    client_message_id: str
    text: str
    chatbot: ChatbotSnapshot
    # set by API clients that send the whole conversation with each request (the OpenAI-style
    # endpoint); None means "the conversation service knows the history"
    history: list[HistoryMessage] | None = None
    channel: Literal["widget", "api"] = "widget"
    # the gateway's running number of the messages it accepted in this conversation: the
    # conversation service stores and answers them in this order (None: no order to keep)
    seq: int | None = None


class VisitorMessageAcceptedEvent(Event):
    """A stream marker: the gateway accepted a message. The gateway holding the visitor's
    stream starts waiting for its reply, and tells the visitor if none comes in time, even
    while the services that would say so cannot (a database outage, say)."""
    transient: ClassVar[bool] = True
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID


# --- conversation ----------------------------------------------------------------------------

class ConversationStartedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID
    returning_visitor: bool = False


class AiReplyRequestedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    visitor_message_id: uuid.UUID
    text: str
    history: list[HistoryMessage] = []
    chatbot: ChatbotSnapshot


# --- ai --------------------------------------------------------------------------------------

class AiReplyStartedEvent(Event):
    transient: ClassVar[bool] = True
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    visitor_message_id: uuid.UUID | None = None


class AiReplyChunkEvent(Event):
    """Coalesced tokens. ``offset`` is where ``text`` starts in the full reply, so a client can
    tell a gap from a repeat."""
    transient: ClassVar[bool] = True
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    seq: int
    offset: int
    text: str


class AiReplyCompletedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    visitor_message_id: uuid.UUID
    text: str
    citations: list[Citation] = []
    sentiment: float = 0.0
    intent: str = "other"
    visitor_sentiment: float = 0.0
    visitor_intent: str = "other"
    provider: str
    model: str
    usage: Usage = Usage()
    timings: Timings = Timings()
    answered_from_knowledge: bool = False


class AiReplyFailedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    code: str
    message: str
    # what the visitor had already seen when a reply was cancelled (code "cancelled")
    partial_text: str = ""
    visitor_message_id: uuid.UUID | None = None


# --- avatar ----------------------------------------------------------------------------------

class AvatarAnimationSelectedEvent(Event):
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    reply_seq: int
    behaviour: str
    clip: str
    sentiment: float = 0.0
    intent: str = "other"


# --- knowledge -------------------------------------------------------------------------------

class DocumentIngestRequestedEvent(Event):
    """A document (upload, URL or crawl page) waits to be extracted, chunked and embedded."""
    chatbot_id: uuid.UUID
    document_id: uuid.UUID


class DocumentIndexedEvent(Event):
    chatbot_id: uuid.UUID
    document_id: uuid.UUID
    chunks: int
    knowledge_version: int


class DocumentFailedEvent(Event):
    chatbot_id: uuid.UUID
    document_id: uuid.UUID
    reason: str


class DocumentDeletedEvent(Event):
    chatbot_id: uuid.UUID
    document_id: uuid.UUID
    knowledge_version: int


def _all_event_classes() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


EVENT_TYPES: dict[str, type[Event]] = _all_event_classes()
STREAM_EVENTS: tuple[type[Event], ...] = (
    VisitorMessageAcceptedEvent,
    AiReplyStartedEvent,
    AiReplyChunkEvent,
    AiReplyCompletedEvent,
    AiReplyFailedEvent,
    AvatarAnimationSelectedEvent,
)


# --- feedback (appended: classes are collected below by walking Event's subclasses) ----------

class FeedbackGivenEvent(Event):
    """A visitor rated a reply. A later rating of the same reply replaces the earlier one."""
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID
    rating: Literal["up", "down"]
    comment: str = ""


EVENT_TYPES["FeedbackGivenEvent"] = FeedbackGivenEvent


# --- lifecycles: what a deletion, a visitor's rights or a person's help ask of every service -----

class TenantDeletedEvent(Event):
    """A tenant was deleted (by the platform admin, or by its owner with confirmation). Every
    service erases that tenant's rows and files."""


class VisitorDataErasureRequestedEvent(Event):
    """The tenant asked to erase everything stored about one visitor of one chatbot. The
    conversation service, which knows the visitor's conversations, erases them and says which
    were erased (``VisitorDataErasedEvent``), so the others can erase what they hold of them."""
    chatbot_id: uuid.UUID
    visitor_id: uuid.UUID


class VisitorDataErasedEvent(Event):
    """The visitor's conversations and messages are gone from the conversation service; the
    other services erase what they keep of them (ledger rows, animation choices, analytics)."""
    chatbot_id: uuid.UUID
    visitor_id: uuid.UUID
    conversation_ids: list[uuid.UUID] = []
    message_ids: list[uuid.UUID] = []


class HandoffRequestedEvent(Event):
    """The visitor asked to talk to a person. No AI turn, no quota: conversation flags the
    conversation for the tenant's team and analytics counts it."""
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    visitor_id: uuid.UUID


class ReplyCancelRequestedEvent(Event):
    """Stop a reply in flight. Routed by conversation, so the ai process streaming that
    conversation's reply (bound on its own stream queue) stops at once; ai's durable queue
    also records it, for a reply that has not started yet."""
    chatbot_id: uuid.UUID
    conversation_id: uuid.UUID
    reply_id: uuid.UUID


for _cls in (TenantDeletedEvent, VisitorDataErasureRequestedEvent, VisitorDataErasedEvent,
             HandoffRequestedEvent, ReplyCancelRequestedEvent):
    EVENT_TYPES[_cls.__name__] = _cls
# What erases data: analytics applies these instead of storing them as raw events (a raw copy
# of an erasure would keep the very ids it erases).
LIFECYCLE_EVENTS: tuple[type[Event], ...] = (ChatbotDeletedEvent, TenantDeletedEvent,
                                             VisitorDataErasureRequestedEvent, VisitorDataErasedEvent)
# Control events that ai processes take on their own stream queue, bound per conversation.
AI_STREAM_EVENTS: tuple[type[Event], ...] = (ReplyCancelRequestedEvent,)
