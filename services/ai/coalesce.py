"""Coalesce provider deltas into chunk events: RabbitMQ carries tens of events per reply, not
hundreds, while the first token still goes out the moment it exists."""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Awaitable, Callable

_PHRASE_END = (".", "!", "?", "\n", ":", ";")


async def coalesce(pieces: AsyncIterator[str], emit: Callable[[str], Awaitable[None]],
                   interval_s: float) -> str:
    """Feed ``pieces`` to ``emit`` in batches; return the full text.

    A batch goes out when it is the first, when ``interval_s`` has passed since the last one,
    or when it ends a phrase; and when the provider goes quiet with text buffered.
    """
    full: list[str] = []
    buffer: list[str] = []
    last_flush = 0.0
    first = True
    iterator = pieces.__aiter__()
    pending: asyncio.Future | None = None

    async def flush() -> None:
        nonlocal last_flush, first
        if buffer:
            text = "".join(buffer)
            buffer.clear()
            await emit(text)
            last_flush = time.monotonic()
            first = False

    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            timeout = None if not buffer else max(0.0, interval_s - (time.monotonic() - last_flush))
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done:
                await flush()
                continue
            try:
                piece = pending.result()
            except StopAsyncIteration:
                break
            finally:
                if pending.done():
                    pending = None
            full.append(piece)
            buffer.append(piece)
            if first or piece.rstrip().endswith(_PHRASE_END) or time.monotonic() - last_flush >= interval_s:
                await flush()
        await flush()
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
    return "".join(full)
