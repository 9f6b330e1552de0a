"""The visitor's SSE stream: stream events from RabbitMQ to the connections of this process.

Each gateway process binds its own exclusive queue to the conversations it streams, so the
process holding a visitor's connection receives that visitor's events, however many run.

SSE ids are ``<reply_seq>-<n>`` (``<reply_seq>-end`` for the last event of a reply). On a
reconnect with ``Last-Event-ID``, every reply that completed after that point is replayed from
the conversation service as ``message.end`` with its full text, so nothing completed is lost;
a reply still streaming continues live, and its ``message.end`` carries the full text that
repairs any delta missed while disconnected (deltas carry their ``offset``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, defaultdict
from typing import Any, Iterator

from aiohttp_sse import EventSourceResponse

from common import events as ev
from common import metrics
from common.logging import get_logger
from common.visemes import TrackBuilder
from common.web import ApiError

log = get_logger(__name__)

_CLOSE = object()


class Slots:
    """Long-lived responses (SSE streams, OpenAI-compatible completions) open at once, per
    key, in this process. A client that opens a thousand streams gets its first few and a
    429 for the rest, instead of holding a thousand connections for an hour."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def check(self, limits: dict[str, int], what: str = "streams") -> None:
        """Refuse when any key is at its limit (cheap: callers check before the database)."""
        for key, limit in limits.items():
            if self._open[key] >= limit:
                kind = key.split(":", 1)[0]
                raise ApiError(429, f"too_many_{what}", f"too many open {what} for this {kind}; close one first",
                               {"limit": limit, "per": kind}, headers={"Retry-After": "5"})

    @contextlib.contextmanager
    def hold(self, limits: dict[str, int], what: str = "streams") -> Iterator[None]:
        self.check(limits, what)
        for key in limits:
            self._open[key] += 1
        try:
            yield
        finally:
            for key in limits:
                self._open[key] -= 1
                if self._open[key] <= 0:
                    del self._open[key]


class StreamHub:
    def __init__(self, bus):
        self.bus = bus
        self.slots = Slots()
        self._streams: dict[uuid.UUID, set[asyncio.Queue]] = defaultdict(set)

    async def open(self, conversation_id: uuid.UUID) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[conversation_id].add(queue)
        await self.bus.bind_stream(str(conversation_id))
        return queue

    async def close(self, conversation_id: uuid.UUID, queue: asyncio.Queue) -> None:
        streams = self._streams.get(conversation_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[conversation_id]
        await self.bus.unbind_stream(str(conversation_id))

    async def dispatch(self, event: ev.Event) -> None:
        for queue in self._streams.get(getattr(event, "conversation_id", None), ()):
            queue.put_nowait(event)

    def close_all(self) -> None:
        for queues in self._streams.values():
            for queue in queues:
                queue.put_nowait(_CLOSE)


def parse_last_event_id(value: str | None) -> tuple[int, bool] | None:
    """``"7-3"`` -> (7, False); ``"7-end"`` -> (7, True); anything else -> None."""
    if not value:
        return None
    seq, _, part = value.partition("-")
    if not seq.isdigit():
        return None
    return int(seq), part == "end"


# What a visitor reads when a reply fails. The code stays (the widget words some of them
# itself); the text never carries a provider's error, an address or anything internal.
_PUBLIC_ERRORS = {
    "cancelled": "Stopped.",
    "rate_limited": "The assistant is busy right now. Please try again in a moment.",
    "reply_timeout": "The answer took too long. Please try again.",
    "deadline_exceeded": "The answer took too long. Please try again.",
}
_GENERIC_ERROR = "Sorry, the assistant could not answer just now. Please try again."


def public_error(code: str | None) -> str:
    return _PUBLIC_ERRORS.get(code or "", _GENERIC_ERROR)


def _citations(citations: list[dict]) -> list[dict]:
    return [{k: c.get(k) for k in ("title", "url", "snippet", "score")} for c in citations or []]


def visitor_message(message: dict) -> dict[str, Any]:
    """A stored message as its visitor may see it (transcript, stream replays): the text and
    citations, never usage, cost, timings, provider or internal error text; those are the
    tenant's (GET /api/v1/conversations/{id})."""
    out = {k: message.get(k) for k in ("id", "seq", "role", "status", "text", "intent", "sentiment", "created_at")}
    out["citations"] = _citations(message.get("citations"))
    if message.get("status") == "failed":
        out["error_code"] = message.get("error_code") or "reply_failed"
        out["error_message"] = public_error(message.get("error_code"))
    return out


def end_payload(event: ev.AiReplyCompletedEvent) -> dict[str, Any]:
    return {
        "reply_id": str(event.reply_id), "reply_seq": event.reply_seq, "text": event.text,
        "citations": _citations([c.model_dump() for c in event.citations]),
        "intent": event.intent, "sentiment": event.sentiment,
    }


class VisitorStream:
    """One SSE connection: translates bus events into SSE events, in order."""

    def __init__(self, response: EventSourceResponse, animation_wait_s: float, reply_wait_s: float = 195.0):
        self.resp = response
        self.animation_wait_s = animation_wait_s
        self.reply_wait_s = reply_wait_s
        self.ended: set[uuid.UUID] = set()
        self.animated: set[uuid.UUID] = set()
        self.pending_end: ev.AiReplyCompletedEvent | None = None
        self.pending_deadline = 0.0
        # messages accepted in this conversation whose reply has not started: when one waits
        # past the deadline, the visitor is told, even if no service can say so (an outage)
        self.awaiting: dict[uuid.UUID, float] = {}
        # lip-sync tracks of the replies streaming now (common/visemes.py)
        self.visemes: dict[uuid.UUID, TrackBuilder] = {}

    async def send(self, event: str, data: dict, event_id: str) -> None:
        await self.resp.send(json.dumps(data, separators=(",", ":")), event=event, id=event_id)

    async def send_visemes(self, reply_id: uuid.UUID, track: list[list]) -> None:
        """The mouth shapes for text just sent. No id: it changes nothing a reconnect resumes."""
        if track:
            await self.resp.send(json.dumps({"reply_id": str(reply_id), "offset": track[0][1], "visemes": track},
                                            separators=(",", ":")), event="avatar.visemes")

    async def send_end(self, event: ev.AiReplyCompletedEvent) -> None:
        if event.reply_id in self.ended:
            return
        self.ended.add(event.reply_id)
        await self.send("message.end", end_payload(event), f"{event.reply_seq}-end")

    async def replay(self, replies: list[dict]) -> None:
        """Stored replies (conversation's messages: a reply's ``id`` and ``seq``) as the stream
        would have ended them (its events' ``reply_id`` and ``reply_seq``)."""
        for reply in replies:
            reply_id = uuid.UUID(reply["id"])
            if reply_id in self.ended:
                continue
            self.ended.add(reply_id)
            shown = visitor_message(reply)
            if reply["status"] == "failed":
                await self.send("error", {"reply_id": reply["id"], "code": shown["error_code"],
                                          "message": shown["error_message"]}, f"{reply['seq']}-end")
            else:
                await self.send("message.end", {
                    "reply_id": reply["id"], "reply_seq": reply["seq"], "text": shown["text"],
                    "citations": shown["citations"], "intent": shown["intent"], "sentiment": shown["sentiment"],
                    "replayed": True,
                }, f"{reply['seq']}-end")

    async def flush_pending(self) -> None:
        if self.pending_end is not None:
            pending, self.pending_end = self.pending_end, None
            await self.send_end(pending)

    def wait_timeout(self) -> float | None:
        deadlines = list(self.awaiting.values())
        if self.pending_end is not None:
            deadlines.append(self.pending_deadline)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    async def expire_awaiting(self) -> None:
        now = time.monotonic()
        for message_id, deadline in list(self.awaiting.items()):
            if deadline <= now:
                del self.awaiting[message_id]
                # no id: not a reply event, so Last-Event-ID keeps pointing at the last reply
                await self.resp.send(json.dumps({"message_id": str(message_id), "code": "reply_timeout",
                                                 "message": "Sorry, we could not answer in time. Please try again."},
                                                separators=(",", ":")), event="error")

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.VisitorMessageAcceptedEvent):
            self.awaiting[event.message_id] = time.monotonic() + self.reply_wait_s
            return
        message_id = getattr(event, "visitor_message_id", None)
        if message_id is not None:
            self.awaiting.pop(message_id, None)
        if isinstance(event, ev.AvatarAnimationSelectedEvent):
            if event.reply_id in self.animated:
                return
            self.animated.add(event.reply_id)
            await self.send("avatar.animation", {"reply_id": str(event.reply_id), "behaviour": event.behaviour,
                                                 "clip": event.clip, "intent": event.intent,
                                                 "sentiment": event.sentiment}, f"{event.reply_seq}-a")
            if self.pending_end is not None and self.pending_end.reply_id == event.reply_id:
                await self.flush_pending()
            return
        if self.pending_end is not None and getattr(event, "reply_id", None) != self.pending_end.reply_id:
            await self.flush_pending()
        if getattr(event, "reply_id", None) in self.ended:
            return  # already replayed in full
        if isinstance(event, ev.AiReplyStartedEvent):
            await self.send("message.start", {"reply_id": str(event.reply_id), "reply_seq": event.reply_seq,
                                              "message_id": str(message_id) if message_id else None},
                            f"{event.reply_seq}-0")
        elif isinstance(event, ev.AiReplyChunkEvent):
            await self.send("message.delta", {"reply_id": str(event.reply_id), "offset": event.offset,
                                              "text": event.text}, f"{event.reply_seq}-{event.seq}")
            builder = self.visemes.setdefault(event.reply_id, TrackBuilder())
            await self.send_visemes(event.reply_id, builder.feed(event.offset, event.text))
        elif isinstance(event, ev.AiReplyCompletedEvent):
            builder = self.visemes.pop(event.reply_id, None)
            if builder is not None:  # the last word, now that it is whole
                await self.send_visemes(event.reply_id, builder.flush())
            if event.reply_id in self.animated:
                await self.send_end(event)
            else:  # let the avatar's animation go first, as the widget expects, but not for long
                self.pending_end = event
                self.pending_deadline = time.monotonic() + self.animation_wait_s
        elif isinstance(event, ev.AiReplyFailedEvent):
            self.ended.add(event.reply_id)
            self.visemes.pop(event.reply_id, None)
            await self.send("error", {"reply_id": str(event.reply_id), "code": event.code,
                                      "message": public_error(event.code)}, f"{event.reply_seq}-end")


async def pump(stream: VisitorStream, queue: asyncio.Queue) -> None:
    """Relay events until the client goes away or the server shuts down."""
    disconnected = asyncio.ensure_future(stream.resp.wait())
    metrics.SSE_CONNECTIONS.labels("gateway").inc()
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, disconnected}, timeout=stream.wait_timeout(),
                                         return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if disconnected in done:
                    return
                await stream.expire_awaiting()
                if stream.pending_end is not None and stream.pending_deadline <= time.monotonic():
                    await stream.flush_pending()  # the animation did not come in time
                continue
            event = getter.result()
            if event is _CLOSE:
                await stream.flush_pending()
                return
            await stream.handle(event)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        disconnected.cancel()
        metrics.SSE_CONNECTIONS.labels("gateway").dec()
