from __future__ import annotations

import asyncpg

from common import events as ev
from common.db import claim, enqueue
from services.avatar.behaviours import choose_behaviour


async def on_ai_reply_completed(event: ev.AiReplyCompletedEvent, *, pool: asyncpg.Pool) -> None:
    behaviour = choose_behaviour(event.intent if event.intent != "other" else event.visitor_intent,
                                 event.sentiment, answered=event.answered_from_knowledge or event.intent != "other")
    clip = behaviour  # the default avatar names its clips after the behaviours
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        await conn.execute(
            "INSERT INTO animation_selections (reply_id, tenant_id, chatbot_id, behaviour, clip) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            event.reply_id, event.tenant_id, event.chatbot_id, behaviour, clip)
        await enqueue(conn, ev.AvatarAnimationSelectedEvent(
            tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
            reply_id=event.reply_id, reply_seq=event.reply_seq, behaviour=behaviour, clip=clip,
            sentiment=event.sentiment, intent=event.intent))
