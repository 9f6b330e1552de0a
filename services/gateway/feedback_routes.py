"""The widget's thumbs up / thumbs down on a reply.

The gateway checks the visitor token and the origin, makes sure the reply belongs to the
visitor's conversation (asking the conversation service), then publishes
``FeedbackGivenEvent`` and answers ``202`` once the broker confirmed it. conversation stores
the rating on the reply; analytics counts it. Rating the same reply again replaces the rating.
"""
from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import Field

from common import events as ev
from common.web import json_response
from services.gateway import clients, service
from services.gateway.api import Ctx, Operations
from services.gateway.models import Out, Strict
from services.gateway.widget import BASE, cors, visitor_reply


op = Operations()


def register(app: web.Application) -> None:
    """Add this module's routes to ``app`` (and its operations to the OpenAPI document)."""
    op.register(app)


class FeedbackIn(Strict):
    rating: Literal["up", "down"] = Field(description="Thumbs up or thumbs down.")
    comment: str = Field("", max_length=2000, description="Optional words from the visitor.")


class FeedbackAccepted(Out):
    reply_id: uuid.UUID
    rating: Literal["up", "down"]
    status: Literal["accepted"] = "accepted"


@op("POST", f"{BASE}/conversations/{{conversation_id}}/replies/{{reply_id}}/feedback",
    summary="Rate a reply (thumbs up or down)", tag="Widget", auth="visitor", body=FeedbackIn,
    response=FeedbackAccepted, status=202)
async def give_feedback(ctx: Ctx) -> web.Response:
    """A later rating of the same reply replaces the earlier one."""
    request = ctx.request
    chatbot, visitor, origin, reply_id = await visitor_reply(ctx)
    body: FeedbackIn = ctx.body
    await service.publish_confirmed(clients.deps(request.app), ev.FeedbackGivenEvent(
        tenant_id=visitor.tenant_id, chatbot_id=chatbot["id"], conversation_id=visitor.conversation_id,
        reply_id=uuid.UUID(reply_id), rating=body.rating, comment=body.comment))
    return cors(json_response(FeedbackAccepted(reply_id=reply_id, rating=body.rating), status=202), origin)
