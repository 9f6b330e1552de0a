from pydantic import Field

from common.settings import settings_for


class Settings(settings_for("gateway")):
    admin_api_key: str = Field(validation_alias="ADMIN_API_KEY")
    visitor_token_secret: str = Field(validation_alias="VISITOR_TOKEN_SECRET")
    visitor_token_ttl_s: int = Field(24 * 3600, validation_alias="VISITOR_TOKEN_TTL")
    public_base_url: str = Field("http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL")
    # SSE comment heartbeat, and how long message.end waits for the avatar's animation
    sse_ping_s: float = Field(15.0, validation_alias="SSE_PING_SECONDS")
    animation_wait_s: float = Field(0.5, validation_alias="ANIMATION_WAIT_SECONDS")
    max_message_chars: int = Field(4000, validation_alias="MAX_MESSAGE_CHARS")
