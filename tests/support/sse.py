"""The Server-Sent Events wire format, parsed as a browser's EventSource does."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class SseEvent:
    event: str
    data: dict
    id: str | None


@dataclass
class SseParser:
    """Feed it the stream's lines; a blank line ends an event, which ``feed`` returns."""
    on_comment: Callable[[str], None] = lambda comment: None
    _name: str = "message"
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, raw: bytes) -> SseEvent | None:
        line = raw.decode().rstrip("\r\n")
        if line == "":
            event = SseEvent(self._name, json.loads("\n".join(self._data)), self._id) if self._data else None
            self._name, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            self.on_comment(line[1:].strip())
            return None
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            self._name = value
        elif key == "data":
            self._data.append(value)
        elif key == "id":
            self._id = value
        return None
