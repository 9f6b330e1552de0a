"""Speech for a reply: the text through the tenant's (else the platform's) OpenAI-compatible
``/audio/speech``, streamed back as it arrives. Internal: the gateway's widget route calls it
for a finished reply of a chatbot whose ``voice`` is ``provider`` (docs/avatar.md, Speech).

The provider's client is the one replies use (``ProviderRegistry``): a tenant's own base URL
goes through the guarded transport, checked at every connection.
"""
from __future__ import annotations

import asyncio
import uuid

import openai
from aiohttp import web
from pydantic import BaseModel, Field

from common.logging import get_logger
from common.web import DEPS, SETTINGS, ApiError, read_json
from services.ai.providers.base import ProviderError

log = get_logger(__name__)


class SpeechIn(BaseModel):
    tenant_id: uuid.UUID
    text: str = Field(min_length=1, max_length=4096)  # the API's own limit per request
    voice: str = Field("alloy", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    model: str = Field("tts-1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")


def add_routes(app: web.Application) -> None:
    async def speech(request: web.Request) -> web.StreamResponse:
        body = await read_json(request, SpeechIn)
        timeout = request.app[SETTINGS].tts_timeout_s
        try:
            provider = await request.app[DEPS].providers.get(body.tenant_id, "openai")
        except ProviderError as exc:
            raise ApiError(409, "voice_not_configured", "no OpenAI-compatible key for speech: "
                           "store one with PUT /api/v1/provider-keys/openai") from exc
        out: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(timeout):
                async with provider.client.audio.speech.with_streaming_response.create(
                        model=body.model, voice=body.voice, input=body.text, response_format="wav") as resp:
                    out = web.StreamResponse(headers={"Content-Type": resp.headers.get("content-type", "audio/wav")})
                    await out.prepare(request)
                    async for chunk in resp.iter_bytes():
                        await out.write(chunk)
            await out.write_eof()
            return out
        except (openai.OpenAIError, TimeoutError) as exc:
            log.warning("speech_failed", error=type(exc).__name__, status=getattr(exc, "status_code", None))
            if out is not None:  # already streaming: the audio just ends short
                return out
            raise ApiError(502, "voice_failed", "the speech provider did not answer") from None

    app.router.add_post("/internal/speech", speech)
