"""An OpenAI-compatible speech endpoint on loopback (``POST /v1/audio/speech``), speaking the
real wire format: a JSON body with ``model``, ``input``, ``voice``, ``response_format``, and the
audio bytes back (``audio/wav``). Each word of the input is "spoken" as a tone burst, longer
for longer words, with silence between words, so a test knows when every word is heard."""
from __future__ import annotations

import asyncio
import io
import math
import re
import wave
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

RATE = 16_000
LEAD_S = 0.25
GAP_S = 0.14


@dataclass
class FakeTts:
    mode: str = "ok"  # "ok" | "fail" | "slow"
    requests: list[dict] = field(default_factory=list)
    # (text offset of the word, start s, end s) of the last audio made
    words: list[tuple[int, float, float]] = field(default_factory=list)
    url: str = ""

    def speak(self, text: str) -> bytes:
        samples = [np.zeros(int(LEAD_S * RATE), dtype=np.float32)]
        t = LEAD_S
        self.words = []
        for n, match in enumerate(re.finditer(r"\w+", text)):
            length = 0.16 + 0.05 * len(match.group(0))
            times = np.arange(int(length * RATE)) / RATE
            envelope = np.minimum(1.0, np.minimum(times, length - times) / 0.01)
            tone = 0.5 * envelope * np.sin(2 * math.pi * (180 + 40 * (n % 3)) * times)
            samples += [tone.astype(np.float32), np.zeros(int(GAP_S * RATE), dtype=np.float32)]
            self.words.append((match.start(), t, t + length))
            t += length + GAP_S
        pcm = (np.concatenate(samples) * 32767).astype("<i2").tobytes()
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        return out.getvalue()

    def app(self) -> web.Application:
        async def speech(request: web.Request) -> web.StreamResponse:
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return web.json_response({"error": {"message": "no key", "type": "invalid_request_error"}},
                                         status=401)
            body = await request.json()
            self.requests.append(body)
            if self.mode == "fail":
                return web.json_response({"error": {"message": "The server had an error", "type": "server_error"}},
                                         status=500)
            if self.mode == "slow":
                await asyncio.sleep(3600)
            audio = self.speak(body["input"])
            resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
            await resp.prepare(request)
            for i in range(0, len(audio), 8192):  # it streams, as the real one does
                await resp.write(audio[i:i + 8192])
            await resp.write_eof()
            return resp

        app = web.Application()
        app.router.add_post("/v1/audio/speech", speech)
        return app
