"""The avatar use cases: upload, list, get, delete, animation maps, a chatbot's avatar, and which
clip a reply plays. No aiohttp or aio-pika here."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from common import events as ev
from common.db import apply_once, claim, enqueue
from common.errors import ServiceError
from common.isolation import IsolatedWorkers, WorkerFailed
from common.logging import get_logger
from services.avatar import repository
from services.avatar.behaviours import BEHAVIOURS, DESCRIPTIONS, choose_behaviour, guess_animation_map, resolve_clip
from services.avatar.lipsync import lipsync_summary
from services.avatar.storage import AvatarStore
from services.avatar.validation import InvalidModel, Limits, ModelInfo, validate_glb_file

log = get_logger(__name__)

# The default avatar has a fixed id, so chatbots and widgets can name it like any other.
DEFAULT_AVATAR_ID = uuid.uuid5(uuid.NAMESPACE_URL, "https://avatarchat.invalid/avatars/default")
PUBLIC_MODEL_PATH = "/api/widget/v1/avatars/{avatar_id}/model.glb"


class AvatarError(ServiceError):
    """A request avatar refuses (common.errors: answered with its status by common.web)."""


def not_found() -> AvatarError:
    return AvatarError(404, "not_found", "no such avatar")


@dataclass
class DefaultAvatar:
    info: ModelInfo

    @property
    def animation_map(self) -> dict[str, str]:
        # its clips are named after the behaviours; guessing finds each exact name
        return guess_animation_map(self.info.clip_names)


def library() -> list[dict]:
    return [{"behaviour": b, "description": DESCRIPTIONS[b]} for b in BEHAVIOURS]


def model_url(avatar_id: uuid.UUID) -> str:
    return PUBLIC_MODEL_PATH.format(avatar_id=avatar_id)


def _info_fields(info: ModelInfo) -> dict:
    data = info.to_dict()
    data.pop("sha256")
    data.pop("size_bytes")
    data["lipsync"] = lipsync_summary(info)
    return data


def default_avatar_out(default: DefaultAvatar) -> dict:
    return {"id": str(DEFAULT_AVATAR_ID), "default": True, "name": "Default avatar", "filename": "default.glb",
            "size_bytes": default.info.size_bytes, "sha256": default.info.sha256,
            "model_url": model_url(DEFAULT_AVATAR_ID), **_info_fields(default.info),
            "animation_map": default.animation_map, "created_at": None, "updated_at": None}


def avatar_out(row: asyncpg.Record) -> dict:
    info = ModelInfo.from_dict(row["info"])
    return {"id": str(row["id"]), "default": False, "name": row["name"], "filename": row["filename"],
            "size_bytes": row["size_bytes"], "sha256": row["sha256"], "model_url": model_url(row["id"]),
            **_info_fields(info), "animation_map": row["animation_map"],
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}


def is_default(avatar_id: uuid.UUID | None) -> bool:
    return avatar_id is None or avatar_id == DEFAULT_AVATAR_ID


class Validator:
    """Checks uploads in a worker process (``common.isolation``), not on the default thread
    pool that also reads model files for every widget: a file built to be slow or to eat
    memory costs that worker, with a deadline and a memory ceiling, and nobody else."""

    def __init__(self, limits: Limits, *, timeout_s: float, memory_bytes: int, processes: int = 1):
        self.limits = limits
        self.workers = IsolatedWorkers(processes=processes, memory_bytes=memory_bytes, timeout_s=timeout_s,
                                       preload=("pygltflib", "numpy"))

    async def validate(self, path: Path) -> ModelInfo:
        try:
            return await self.workers.run(validate_glb_file, str(path), self.limits)
        except WorkerFailed as exc:
            how = {"timeout": f"took longer than {self.workers.timeout_s:g} s",
                   "memory": f"needed more than {self.workers.memory_bytes // 2 ** 20} MB"}.get(exc.kind, "crashed")
            raise InvalidModel("too_complex", f"checking the model {how}; simplify it", {"reason": exc.kind}) from None

    def close(self) -> None:
        self.workers.close()


async def upload(pool: asyncpg.Pool, store: AvatarStore, validator: Validator, *, tenant_id: uuid.UUID, name: str,
                 filename: str, received: Path, max_per_tenant: int) -> dict:
    """Validate the received file, then keep it and its row; on any failure neither is left
    behind (the caller removes ``received`` unless it was kept)."""
    try:
        info = await validator.validate(received)
    except InvalidModel as exc:
        log.info("avatar_rejected", code=exc.code)
        raise AvatarError(exc.status, exc.code, exc.message, exc.details) from None
    avatar_id = uuid.uuid4()
    animation_map = guess_animation_map(info.clip_names)
    await store.adopt(avatar_id, received)
    try:
        async with pool.acquire() as conn, conn.transaction():
            # serialise a tenant's uploads so the count check holds
            await repository.advisory_lock_tenant(conn, tenant_id)
            if await repository.count_avatars(conn, tenant_id) >= max_per_tenant:
                raise AvatarError(409, "too_many_avatars",
                                  f"a tenant can keep {max_per_tenant} avatars; delete one first")
            row = await repository.create_avatar(conn, avatar_id, tenant_id, name, filename, info.size_bytes,
                                                 info.sha256, info.to_dict(), animation_map)
    except BaseException:
        await store.delete(avatar_id)
        raise
    log.info("avatar_uploaded", avatar_id=str(avatar_id), bytes=info.size_bytes, clips=len(info.clips))
    return avatar_out(row)


async def list_avatars(pool: asyncpg.Pool, default: DefaultAvatar, tenant_id: uuid.UUID) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await repository.list_avatars(conn, tenant_id, 1000)
    return [default_avatar_out(default), *(avatar_out(r) for r in rows)]


async def get_avatar(pool: asyncpg.Pool, default: DefaultAvatar, tenant_id: uuid.UUID,
                     avatar_id: uuid.UUID) -> dict:
    if is_default(avatar_id):
        return default_avatar_out(default)
    async with pool.acquire() as conn:
        row = await repository.get_avatar(conn, tenant_id, avatar_id)
        if row is None:
            raise not_found()
        chatbot_maps = await repository.chatbot_animation_maps(conn, tenant_id, avatar_id)
        used_by = await repository.chatbots_using(conn, avatar_id)
    return {**avatar_out(row), "chatbot_animation_maps": {str(k): v for k, v in chatbot_maps.items()},
            "used_by_chatbots": [str(c) for c in used_by]}


async def delete_avatar(pool: asyncpg.Pool, store: AvatarStore, tenant_id: uuid.UUID, avatar_id: uuid.UUID) -> None:
    if is_default(avatar_id):
        raise AvatarError(403, "forbidden", "the default avatar cannot be deleted")
    async with pool.acquire() as conn, conn.transaction():
        if await repository.lock_avatar(conn, tenant_id, avatar_id) is None:
            raise not_found()
        used_by = await repository.chatbots_using(conn, avatar_id)
        if used_by:
            raise AvatarError(409, "avatar_in_use", "chatbots still show this avatar; give them another one first",
                              {"chatbot_ids": [str(c) for c in used_by]})
        await repository.delete_avatar(conn, tenant_id, avatar_id)
    await store.delete(avatar_id)  # after the commit: a failed delete leaves the row, never a dangling row
    log.info("avatar_deleted", avatar_id=str(avatar_id))


def check_animation_map(animation_map: dict[str, str], clips: list[str]) -> None:
    unknown = sorted(set(animation_map) - set(BEHAVIOURS))
    if unknown:
        raise AvatarError(422, "unknown_behaviour", "the map names behaviours that are not in the library",
                          {"unknown": unknown, "behaviours": list(BEHAVIOURS)})
    missing = {b: c for b, c in animation_map.items() if c not in clips}
    if missing:
        raise AvatarError(422, "unknown_clip", "the map names clips this model does not have",
                          {"missing": missing, "clips": clips})


async def put_animation_map(pool: asyncpg.Pool, default: DefaultAvatar, tenant_id: uuid.UUID,
                            avatar_id: uuid.UUID, animation_map: dict[str, str] | None,
                            chatbot_id: uuid.UUID | None) -> dict:
    """Replace the avatar's map (``None``: back to the guessed one), or with ``chatbot_id`` that
    chatbot's own map for this avatar (``None``: remove it)."""
    if is_default(avatar_id):
        raise AvatarError(403, "forbidden", "the default avatar's clips are named after the behaviours; "
                          "its map cannot change")
    async with pool.acquire() as conn, conn.transaction():
        row = await repository.lock_avatar(conn, tenant_id, avatar_id)
        if row is None:
            raise not_found()
        clips = ModelInfo.from_dict(row["info"]).clip_names
        if animation_map is not None:
            check_animation_map(animation_map, clips)
        if chatbot_id is None:
            await repository.set_animation_map(conn, tenant_id, avatar_id,
                                               animation_map if animation_map is not None
                                               else guess_animation_map(clips))
        elif animation_map is None:
            await repository.delete_chatbot_animation_map(conn, tenant_id, chatbot_id, avatar_id)
        else:
            await repository.set_chatbot_animation_map(conn, tenant_id, chatbot_id, avatar_id, animation_map)
    return await get_avatar(pool, default, tenant_id, avatar_id)


async def set_chatbot_avatar(pool: asyncpg.Pool, default: DefaultAvatar, tenant_id: uuid.UUID,
                             chatbot_id: uuid.UUID, avatar_id: uuid.UUID | None) -> dict:
    stored = None if is_default(avatar_id) else avatar_id
    async with pool.acquire() as conn, conn.transaction():
        if stored is not None and await repository.lock_avatar(conn, tenant_id, stored) is None:
            raise not_found()
        if not await repository.set_chatbot_avatar(conn, tenant_id, chatbot_id, stored):
            raise AvatarError(404, "not_found", "no such chatbot")
    return await chatbot_avatar(pool, default, tenant_id, chatbot_id)


async def chatbot_avatar(pool: asyncpg.Pool, default: DefaultAvatar, tenant_id: uuid.UUID,
                         chatbot_id: uuid.UUID) -> dict:
    """What the widget needs: the model URL and the effective behaviour -> clip map."""
    async with pool.acquire() as conn:
        row = await repository.animation_for_chatbot(conn, tenant_id, chatbot_id)
    if row is None:
        avatar_id, animation_map = DEFAULT_AVATAR_ID, default.animation_map
    else:
        avatar_id, animation_map = row["avatar_id"], {**row["animation_map"], **(row["chatbot_map"] or {})}
    effective = {b: c for b in BEHAVIOURS if (c := resolve_clip(b, animation_map))}
    return {"chatbot_id": str(chatbot_id), "avatar_id": str(avatar_id), "default": is_default(avatar_id),
            "model_url": model_url(avatar_id), "animation_map": effective}


async def select_clip(conn: asyncpg.Connection, tenant_id: uuid.UUID, chatbot_id: uuid.UUID,
                      behaviour: str) -> tuple[uuid.UUID | None, str]:
    """(the avatar shown, None for the default one; the clip it plays for ``behaviour``;
    "" when the model has no clip for it)."""
    row = await repository.animation_for_chatbot(conn, tenant_id, chatbot_id)
    if row is None:
        return None, behaviour  # the default avatar has a clip named after every behaviour
    animation_map = {**row["animation_map"], **(row["chatbot_map"] or {})}
    return row["avatar_id"], resolve_clip(behaviour, animation_map) or ""


# --- lifecycles --------------------------------------------------------------------------------
# The avatar service alone keeps which avatar a chatbot shows (chatbot_avatars); a deleted
# chatbot lets its avatar go here, so deleting that avatar afterwards just works.

async def delete_chatbot(pool: asyncpg.Pool, event: ev.ChatbotDeletedEvent) -> None:
    await apply_once(pool, event, repository.delete_chatbot, event.tenant_id, event.chatbot_id)
    log.info("chatbot_avatar_forgotten", chatbot_id=str(event.chatbot_id))


async def delete_tenant(pool: asyncpg.Pool, store: AvatarStore, event: ev.TenantDeletedEvent) -> None:
    """Rows and files. The files go before the commit: if one cannot be removed the event is
    retried, and the rows are still there to say which."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        avatar_ids = await repository.delete_tenant(conn, event.tenant_id)
        for avatar_id in avatar_ids:
            await store.delete(avatar_id)
    log.info("tenant_avatars_deleted", avatars=len(avatar_ids))


async def erase_visitor(pool: asyncpg.Pool, event: ev.VisitorDataErasedEvent) -> None:
    await apply_once(pool, event, repository.delete_selections, event.tenant_id, event.message_ids)


async def animate_reply(pool: asyncpg.Pool, event: ev.AiReplyCompletedEvent) -> None:
    """Pick the reply's behaviour, play it through the chatbot's avatar's animation map."""
    behaviour = choose_behaviour(event.intent if event.intent != "other" else event.visitor_intent,
                                 event.sentiment, answered=event.answered_from_knowledge or event.intent != "other")
    async with pool.acquire() as conn, conn.transaction():
        if not await claim(conn, event):
            return
        avatar_id, clip = await select_clip(conn, event.tenant_id, event.chatbot_id, behaviour)
        await repository.record_selection(conn, event.reply_id, event.tenant_id, event.chatbot_id, avatar_id,
                                          behaviour, clip)
        await enqueue(conn, ev.AvatarAnimationSelectedEvent(
            tenant_id=event.tenant_id, chatbot_id=event.chatbot_id, conversation_id=event.conversation_id,
            reply_id=event.reply_id, reply_seq=event.reply_seq, behaviour=behaviour, clip=clip,
            sentiment=event.sentiment, intent=event.intent))
    log.info("animation_selected", reply_id=str(event.reply_id), behaviour=behaviour, clip=clip)
