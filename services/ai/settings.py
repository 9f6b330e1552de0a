from pydantic import Field

from common.settings import settings_for


class Settings(settings_for("ai")):
    # coalesce provider deltas into chunks at most this often (the first goes out at once)
    chunk_interval_ms: float = Field(40.0, validation_alias="CHUNK_INTERVAL_MS")
    # the whole reply, provider and fallback included, must finish within this
    reply_deadline_s: float = Field(120.0, validation_alias="AI_REPLY_DEADLINE_SECONDS")
