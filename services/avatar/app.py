"""avatar service app factory."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from aiohttp import web

from common.bus import Bus
from common.logging import get_logger
from common.web import make_app, service_context
from services.avatar import handlers, views
from services.avatar.default_avatar import build_glb
from services.avatar.service import DefaultAvatar, Validator
from services.avatar.settings import Settings
from services.avatar.storage import AvatarStore
from services.avatar.validation import validate_glb

MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def ensure_default_avatar(store: AvatarStore) -> DefaultAvatar:
    """Generate the default avatar into the store when it is missing or out of date (the
    generator changed), and check it like any upload."""
    data = build_glb()
    path = store.default_path
    if not path.exists() or path.read_bytes() != data:
        store.write_default(data)
        log.info("default_avatar_written", path=str(path), bytes=len(data))
    return DefaultAvatar(validate_glb(data))


def _storage_ctx(settings: Settings):
    async def ctx(app: web.Application):
        store = AvatarStore(settings.storage_dir)
        app[views.STORE] = store
        app[views.DEFAULT] = await asyncio.to_thread(ensure_default_avatar, store)
        app[views.VALIDATOR] = Validator(settings.limits, timeout_s=settings.validate_timeout_s,
                                         memory_bytes=settings.validate_memory_mb * 1024 ** 2)
        yield
        app[views.VALIDATOR].close()
    return ctx


def create_app(settings: Settings | None = None, *, pool: asyncpg.Pool | None = None,
               bus: Bus | None = None) -> web.Application:
    settings = settings or Settings()
    app = make_app(settings)
    app.cleanup_ctx.append(_storage_ctx(settings))
    app.cleanup_ctx.append(service_context(MIGRATIONS, pool=pool, bus=bus, registry=handlers.REGISTRY,
                                           bootstrap=handlers.bootstrap))
    app.router.add_routes(views.routes)
    return app
