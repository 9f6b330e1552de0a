"""The gateway's use cases: accepting a visitor's message, the chatbot snapshot the reply
pipeline works from, publishing an event the broker confirmed, and asking for a reply to
stop. No routes here: the route modules (views, widget, chat_api...) call these."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from dataclasses import dataclass
from typing import Any

from common import events as ev
from common.bus import BusError
from common.errors import ServiceError, unavailable
from common.logging import get_logger
from services.gateway import repository
from services.gateway.auth import new_token

log = get_logger(__name__)


@dataclass(frozen=True)
class Deps:
    """What the use cases work with: the gateway's database, the bus, and the conversation
    service's client (the route modules build it from the app: clients.deps(app))."""
    pool: Any
    bus: Any
    conversation: Any


def month_start(now: datetime | None = None) -> date:
    now = now or datetime.now(timezone.utc)
    return date(now.year, now.month, 1)


def snapshot(row) -> ev.ChatbotSnapshot:
    config = row["config"]
    persona, ai, knowledge = config["persona"], config["ai"], config["knowledge"]
    return ev.ChatbotSnapshot(
        chatbot_id=row["id"], name=row["name"], system_prompt=persona["system_prompt"], tone=persona["tone"],
        greeting=persona["greeting"], fallback_answer=persona["fallback_answer"], provider=ai["provider"],
        model=ai["model"], temperature=ai["temperature"], max_tokens=ai["max_tokens"],
        fallback_provider=ai.get("fallback_provider"), top_k=knowledge["top_k"],
        score_threshold=knowledge["score_threshold"],
        welcome_message=config.get("welcome_message", ""),
        suggested_questions=list(config.get("suggested_questions", [])))


async def accept_message(deps: Deps, chatbot, conversation_id: uuid.UUID, visitor_id: uuid.UUID,
                         text: str, client_message_id: str, *, history: list[ev.HistoryMessage] | None = None,
                         channel: str = "widget") -> uuid.UUID:
    """Count the message against the tenant's monthly quota and publish it with a broker
    confirm: once this returns, the message is on disk and will be answered."""
    # the same client message id always maps to the same message id: retries are harmless
    message_id = uuid.uuid5(conversation_id, client_message_id)
    month = month_start()
    async with deps.pool.acquire() as conn, conn.transaction():
        tenant = await repository.get_tenant(conn, chatbot["tenant_id"])
        if not await repository.count_message(conn, chatbot["tenant_id"], month, tenant["monthly_message_quota"],
                                              message_id):
            raise ServiceError(403, "quota_exceeded", "this chatbot has used its messages for the month")
        # the order this conversation's messages are answered in, whichever gateway took them;
        # a retry keeps its first number
        seq = await repository.message_seq(conn, conversation_id, message_id)
    event = ev.VisitorMessageReceivedEvent(
        tenant_id=chatbot["tenant_id"], chatbot_id=chatbot["id"], conversation_id=conversation_id,
        visitor_id=visitor_id, message_id=message_id, client_message_id=client_message_id,
        text=text, chatbot=snapshot(chatbot), history=history, channel=channel, seq=seq)
    try:
        await deps.bus.publish(event)
    except BusError as exc:
        log.error("message_not_accepted", error=repr(exc))
        async with deps.pool.acquire() as conn:
            await repository.uncount_message(conn, chatbot["tenant_id"], month, message_id)
        raise unavailable("the message could not be accepted; try again") from None
    try:  # the gateway holding the visitor's stream starts waiting for the reply
        await deps.bus.publish(ev.VisitorMessageAcceptedEvent(
            tenant_id=chatbot["tenant_id"], chatbot_id=chatbot["id"], conversation_id=conversation_id,
            message_id=message_id))
    except BusError:  # a transient marker; the message itself is safe
        log.debug("accepted_marker_not_sent", exc_info=True)
    return message_id


async def publish_confirmed(deps: Deps, event: ev.Event) -> None:
    """Publish with the broker's confirm, or answer 503: once this returns, the event is on disk."""
    try:
        await deps.bus.publish(event)
    except BusError as exc:
        log.error("event_not_published", event_type=event.name(), error=repr(exc))
        raise unavailable("the request could not be taken; try again") from None


async def cancel_reply(deps: Deps, tenant_id: uuid.UUID, reply_id: str, *,
                       conversation_id: uuid.UUID | None = None) -> None:
    """Ask the ai process streaming the reply to stop (ReplyCancelRequestedEvent). Another
    tenant's reply is 404, one of another conversation too; a reply that ended is 409."""
    reply = await deps.conversation.request("GET", f"/internal/replies/{reply_id}",
                                            params={"tenant_id": str(tenant_id)})
    if conversation_id is not None and reply["conversation_id"] != str(conversation_id):
        raise ServiceError(404, "not_found", "no such reply in this conversation")
    if reply["status"] in ("completed", "failed"):
        raise ServiceError(409, "reply_finished", f"the reply already ended ({reply['status']})")
    await publish_confirmed(deps, ev.ReplyCancelRequestedEvent(
        tenant_id=tenant_id, chatbot_id=uuid.UUID(reply["chatbot_id"]),
        conversation_id=uuid.UUID(reply["conversation_id"]), reply_id=uuid.UUID(reply_id)))


# --- console invites and reset links (docs/console.md) -----------------------------------------

INVITE_TTL_S = 7 * 86400
RESET_TTL_S = 3600


def console_link(public_base_url: str, kind: str, token: str) -> str:
    """Where a person opens an invite or a reset link: the console's route, the token in the
    fragment (never sent to a server, so it stays out of access logs)."""
    return f"{public_base_url.rstrip('/')}/console/#/{kind}/{token}"


async def create_invite(conn, public_base_url: str, tenant_id: uuid.UUID, email: str, role: str,
                        created_by: uuid.UUID | None) -> tuple[object, str, str]:
    """(the invite's row, its token, shown once, and its link)."""
    token, token_hash = new_token()
    row = await repository.create_invite(conn, token_hash, tenant_id, email, role, INVITE_TTL_S, created_by)
    return row, token, console_link(public_base_url, "invite", token)
