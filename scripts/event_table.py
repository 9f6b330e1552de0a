"""docs/architecture.md's event table, generated: for every event, its class, who publishes
it, every consumer with its handler and the tables that handler writes.

- Consumers come from ``common/topology.py`` (the durable queues), each service's
  ``handlers.REGISTRY`` (the handlers) and their ``@touches(...)`` (the tables); the per-process
  stream queues from ``common.events.STREAM_EVENTS`` (gateway) and ``AI_STREAM_EVENTS`` (ai).
- Publishers are found in the code: every service module that constructs the event class.

    python -m scripts.event_table          # rewrite the table in docs/architecture.md
    python -m scripts.event_table --check  # exit 1 when the doc is stale (tests/unit does this)
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from common import events as ev
from common.topology import SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
START = "<!-- event-table:start (python -m scripts.event_table) -->"
END = "<!-- event-table:end -->"
SERVICES = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")


def publishers() -> dict[str, list[str]]:
    """Event name -> the services whose code constructs it (``ev.XEvent(`` or ``XEvent(``)."""
    found: dict[str, set[str]] = {name: set() for name in ev.EVENT_TYPES}
    pattern = re.compile(r"\b(?:ev\.)?(\w+Event)\(")
    for service in SERVICES:
        for path in sorted((ROOT / "services" / service).rglob("*.py")):
            for name in pattern.findall(path.read_text()):
                if name in found:
                    found[name].add(service)
    return {name: sorted(services, key=SERVICES.index) for name, services in found.items()}


def consumers() -> dict[str, list[str]]:
    """Event name -> "service: handler (tables)" for every durable and stream consumer."""
    out: dict[str, list[str]] = {name: [] for name in ev.EVENT_TYPES}
    for service in SERVICES:
        registry = importlib.import_module(f"services.{service}.handlers").REGISTRY
        for event_cls in SUBSCRIPTIONS[service]:
            for handler in registry.get(event_cls, []):
                tables = ", ".join(f"`{t}`" for t in getattr(handler, "tables", ()))
                out[event_cls.name()].append(f"{service}: `{handler.__name__}`" + (f" ({tables})" if tables else ""))
    for cls in ev.STREAM_EVENTS:
        out[cls.name()].append("gateway: stream queue → the visitor's SSE stream")
    for cls in ev.AI_STREAM_EVENTS:
        out[cls.name()].append("ai: stream queue → stops the reply it streams")
    return out


def render() -> str:
    published, consumed = publishers(), consumers()
    rows = ["| event | published by | consumed by: handler (tables it writes) |", "|---|---|---|"]
    for name in sorted(ev.EVENT_TYPES):
        cls = ev.EVENT_TYPES[name]
        label = f"`{name}`" + (" (transient)" if cls.transient else "")
        rows.append(f"| {label} | {', '.join(published[name]) or '—'} | {'<br>'.join(consumed[name]) or '—'} |")
    return "\n".join(rows)


def rewrite(doc: str) -> str:
    before, _, rest = doc.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{render()}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the doc is stale")
    args = parser.parse_args()
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        print(f"{DOC}: the markers {START!r} and {END!r} are missing", file=sys.stderr)
        return 1
    fresh = rewrite(doc)
    if args.check:
        if fresh != doc:
            print("docs/architecture.md's event table is stale: run python -m scripts.event_table", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
