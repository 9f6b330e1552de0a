"""Visitors as the widget behaves: each holds an SSE stream (reconnecting with Last-Event-ID
when it drops) and sends messages, retrying one the platform did not take (no answer, 502,
503, 504) with the same client message id. Everything is recorded, so a test can count what
was accepted against what was answered, seen as failed, or lost."""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import aiohttp

from tests.support.sse import SseParser


@dataclass
class Sent:
    index: int
    client_id: str
    accepted_at: float                   # monotonic, when the 202 came
    message_id: str


@dataclass
class Visitor:
    http: aiohttp.ClientSession
    base: str
    embed_id: str
    number: int
    conversation: dict = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)           # accepted, in send order
    refused: int = 0                                         # gave up on (never accepted)
    retries: int = 0
    throttled: int = 0                                       # 429s (the visitor rate limit)
    reply_of: dict[str, str] = field(default_factory=dict)   # reply id -> message id (message.start)
    ended: dict[str, float] = field(default_factory=dict)    # reply id -> monotonic time of message.end
    failed: set[str] = field(default_factory=set)            # reply ids (or message ids) the visitor saw fail
    end_order: list[str] = field(default_factory=list)       # reply ids in the order their end arrived
    reconnects: int = 0
    last_event_id: str | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"{self.base}/api/widget/v1/{self.embed_id}/conversations/{self.conversation['conversation_id']}"

    @property
    def address(self) -> dict:
        """Each visitor comes from its own address (RFC 5737), as behind nginx: the per-IP
        stream and conversation caps are for one address, not for sixty people."""
        return {"X-Forwarded-For": f"198.51.100.{self.number % 250 + 1}"}

    async def start(self, patience_s: float = 240) -> None:
        """Start the conversation, waiting out an outage as the widget's visitor would."""
        give_up = time.monotonic() + patience_s
        while True:
            try:
                async with self.http.post(f"{self.base}/api/widget/v1/{self.embed_id}/conversations",
                                          headers=self.address, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                    if resp.status == 201:
                        self.conversation = await resp.json()
                        return
                    if resp.status not in (502, 503, 504) or time.monotonic() > give_up:
                        raise AssertionError(f"conversation refused with {resp.status}: {await resp.text()}")
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                if time.monotonic() > give_up:
                    raise
            await asyncio.sleep(1)

    async def listen(self) -> None:
        """The SSE stream, reopened (with Last-Event-ID) whenever it ends, until stopped."""
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream", **self.address}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            try:
                async with self.http.get(self.url + "/stream", params={"token": self.conversation["visitor_token"]},
                                         headers=headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as resp:
                    if resp.status != 200:
                        raise ConnectionError(f"stream answered {resp.status}")
                    await self._read(resp)
            except (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError):
                pass
            if self._stop.is_set():
                return
            self.reconnects += 1
            await asyncio.sleep(0.5)

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        parser = SseParser()
        async for raw in resp.content:
            event = parser.feed(raw)
            if event is not None:
                self._event(event.event, event.data, event.id)
            if raw.strip() == b"" and self._stop.is_set():
                return

    def _event(self, name: str, data: dict, event_id: str | None) -> None:
        if event_id:
            self.last_event_id = event_id
        reply_id = data.get("reply_id")
        if name == "message.start" and data.get("message_id"):
            self.reply_of[reply_id] = data["message_id"]
        elif name == "message.end" and reply_id not in self.ended:
            self.ended[reply_id] = time.monotonic()
            self.end_order.append(reply_id)
        elif name == "error":
            self.failed.add(reply_id or data.get("message_id"))

    async def send(self, index: int, text: str, patience_s: float = 240) -> Sent | None:
        client_id = f"v{self.number}-m{index}"
        give_up = time.monotonic() + patience_s
        delay = 0.5
        while True:
            try:
                async with self.http.post(self.url + "/messages", json={"text": text, "client_message_id": client_id},
                                          headers={"Authorization": f"Bearer {self.conversation['visitor_token']}",
                                                   **self.address},
                                          timeout=aiohttp.ClientTimeout(total=15)) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status == 202:
                        sent = Sent(index, client_id, time.monotonic(), body["message_id"])
                        self.sent.append(sent)
                        return sent
                    if resp.status == 429:  # sending quickly: the visitor waits, as the widget asks
                        self.throttled += 1
                    elif resp.status not in (502, 503, 504):
                        raise AssertionError(f"message refused with {resp.status}: {body}")
                    wait = float(resp.headers.get("Retry-After") or delay)
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError):
                wait = delay
            self.retries += 1
            if time.monotonic() > give_up:
                self.refused += 1
                return None
            await asyncio.sleep(min(wait, 5))
            delay = min(delay * 2, 5)

    def stop(self) -> None:
        self._stop.set()


QUESTIONS = ["When are you open on Saturday?", "Do you repair e-bikes?", "How much is a cargo bike per day?",
             "Can I return a bike after 30 days?", "Do you deliver outside Utrecht?"]


class Traffic:
    """``visitors`` visitors at a time, together sending about ``rate`` messages a second; each
    has a conversation of ``turns`` messages (now and then two back to back: their order must
    hold), then leaves and a new visitor comes, so conversations stay as long as real ones.
    Each visitor stays under the per-visitor rate limit (20 a minute) on average."""

    def __init__(self, http: aiohttp.ClientSession, base: str, embed_id: str, *, visitors: int = 60,
                 rate: float = 20.0, turns: int = 6):
        self.http, self.base, self.embed_id = http, base, embed_id
        self.concurrency = visitors
        self.turns = turns
        self.interval = visitors / rate
        self.visitors: list[Visitor] = []          # every conversation so far
        self._numbers = itertools.count()
        self._tasks: list[asyncio.Task] = []
        self._talkers: list[asyncio.Task] = []
        self._sending = asyncio.Event()
        self.errors: list[BaseException] = []

    async def start(self) -> None:
        self._sending.set()
        for slot in range(self.concurrency):
            self._talkers.append(asyncio.create_task(self._talk(slot)))

    async def _talk(self, slot: int) -> None:
        try:
            await asyncio.sleep(slot * self.interval / self.concurrency)  # spread the visitors
            while self._sending.is_set():
                visitor = Visitor(self.http, self.base, self.embed_id, next(self._numbers))
                await visitor.start()
                self.visitors.append(visitor)
                self._tasks.append(asyncio.create_task(visitor.listen()))
                await self._turns(visitor)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a task
            self.errors.append(exc)

    async def _turns(self, visitor: Visitor) -> None:
        index = 0
        while self._sending.is_set() and index < self.turns:
            started = time.monotonic()
            burst = 2 if index % 4 == 2 else 1
            for _ in range(burst):
                await visitor.send(index, QUESTIONS[index % len(QUESTIONS)])
                index += 1
            await asyncio.sleep(max(0.0, burst * self.interval - (time.monotonic() - started)))

    async def stop_sending(self) -> None:
        self._sending.clear()
        await asyncio.gather(*self._talkers, return_exceptions=True)

    async def close(self) -> None:
        self._sending.clear()
        for visitor in self.visitors:
            visitor.stop()
        for task in self._tasks + self._talkers:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._talkers, return_exceptions=True)

    @property
    def accepted(self) -> int:
        return sum(len(v.sent) for v in self.visitors)

    def turn_ms_between(self, start: float, end: float) -> list[float]:
        """Time from a message's 202 to its reply's end, for messages accepted in [start, end)."""
        out = []
        for v in self.visitors:
            ended_by_message = {v.reply_of[r]: t for r, t in v.ended.items() if r in v.reply_of}
            for s in v.sent:
                if start <= s.accepted_at < end and s.message_id in ended_by_message:
                    out.append((ended_by_message[s.message_id] - s.accepted_at) * 1000)
        return out
