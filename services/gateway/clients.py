"""The gateway's clients of the internal services."""
from __future__ import annotations

from aiohttp import web

from common.http import InternalClient
from common.web import BUS, POOL
from services.gateway.service import Deps

CONVERSATION = web.AppKey("conversation_client", InternalClient)
INTERNAL = web.AppKey("internal_clients", dict)


def deps(app: web.Application) -> Deps:
    """The use cases' dependencies (services/gateway/service.py), from the running app."""
    return Deps(pool=app[POOL], bus=app[BUS], conversation=app[CONVERSATION])
