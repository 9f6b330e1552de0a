from __future__ import annotations

import asyncpg

from common import events as ev
from common.db import claim, enqueue
from common.logging import get_logger
from services.avatar import repository, service
from services.avatar.behaviours import choose_behaviour

log = get_logger(__name__)


async def on_ai_reply_completed(event: ev.AiReplyCompletedEvent, *, pool: asyncpg.Pool) -> None:
    """Pick the reply's behaviour, play it through the chatbot's avatar's animation map."""
    behaviour = choose_behaviour(event.intent if event.intent != "other" else event.visitor_intent,
                                 event.sentiment, answered=event.answered_from_knowledge or event.intent != "other")
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        avatar_id, clip = await service.select_clip(conn, event.tenant_id, event.chatbot_id, behaviour)
        await repository.record_selection(conn, event.reply_id, event.tenant_id, event.chatbot_id, avatar_id,
                                          behaviour, clip)
        await enqueue(conn, ev.AvatarAnimationSelectedEvent(
            tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
            reply_id=event.reply_id, reply_seq=event.reply_seq, behaviour=behaviour, clip=clip,
            sentiment=event.sentiment, intent=event.intent))
    log.info("animation_selected", reply_id=str(event.reply_id), behaviour=behaviour, clip=clip)
