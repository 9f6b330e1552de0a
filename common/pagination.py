"""Opaque cursors over (created_at, id): stable under inserts, no offsets to skip or repeat rows."""
from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

from common.web import ApiError


def encode(created_at: datetime, row_id) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, *, uuid_ids: bool = True) -> tuple[datetime, object] | None:
    if not cursor:
        return None
    try:
        created, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created), uuid.UUID(row_id) if uuid_ids else str(row_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one we gave out") from None


def page(rows: list, limit: int, to_out) -> dict:
    """Rows were fetched with limit + 1: the extra one only says there is a next page."""
    more = len(rows) > limit
    rows = rows[:limit]
    return {"data": [to_out(r) for r in rows],
            "next_cursor": encode(rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None}
