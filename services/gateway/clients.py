"""The gateway's clients of the internal services."""
from __future__ import annotations

from aiohttp import web

from common.http import InternalClient

CONVERSATION = web.AppKey("conversation_client", InternalClient)
INTERNAL = web.AppKey("internal_clients", dict)
