from pydantic import Field

from common.settings import settings_for
from services.gateway.ratelimit import Limit


class Settings(settings_for("gateway")):
    admin_api_key: str = Field(validation_alias="ADMIN_API_KEY")
    visitor_token_secret: str = Field(validation_alias="VISITOR_TOKEN_SECRET")
    visitor_token_ttl_s: int = Field(2 * 3600, validation_alias="VISITOR_TOKEN_TTL")
    # a conversation's tokens are refreshed only this long after it started, however often
    # they are refreshed; a tenant can also revoke them at once
    visitor_session_max_age_s: int = Field(24 * 3600, validation_alias="VISITOR_SESSION_MAX_AGE")
    public_base_url: str = Field("http://127.0.0.1:8080", validation_alias="PUBLIC_BASE_URL")
    # SSE comment heartbeat, and how long message.end waits for the avatar's animation
    sse_ping_s: float = Field(15.0, validation_alias="SSE_PING_SECONDS")
    animation_wait_s: float = Field(0.5, validation_alias="ANIMATION_WAIT_SECONDS")
    max_message_chars: int = Field(4000, validation_alias="MAX_MESSAGE_CHARS")
    # unrevoked API keys a tenant may hold (every request looks its key up)
    max_api_keys_per_tenant: int = Field(50, ge=1, validation_alias="MAX_API_KEYS_PER_TENANT")
    # rate limits, per minute: each API key, each visitor's messages, each client IP
    rate_limit_key_per_min: int = Field(600, validation_alias="RATE_LIMIT_KEY_PER_MINUTE")
    rate_limit_visitor_per_min: int = Field(20, validation_alias="RATE_LIMIT_VISITOR_PER_MINUTE")
    rate_limit_ip_per_min: int = Field(300, validation_alias="RATE_LIMIT_IP_PER_MINUTE")
    # anonymous quota burn: every new conversation is a new visitor with its own message
    # limit, so conversations and messages are also limited per client IP
    rate_limit_conversations_per_ip_per_hour: int = Field(
        30, validation_alias="RATE_LIMIT_CONVERSATIONS_PER_IP_PER_HOUR")
    rate_limit_messages_per_ip_per_hour: int = Field(200, validation_alias="RATE_LIMIT_MESSAGES_PER_IP_PER_HOUR")
    # long-lived responses open at once, per gateway process: visitor streams per
    # conversation (each of its tokens) and per client IP, OpenAI-compatible completions
    # (which hold a connection up to 180 s) per tenant
    sse_max_per_conversation: int = Field(3, ge=1, validation_alias="SSE_MAX_PER_CONVERSATION")
    sse_max_per_ip: int = Field(50, ge=1, validation_alias="SSE_MAX_PER_IP")
    completions_max_per_tenant: int = Field(20, ge=1, validation_alias="CHAT_COMPLETIONS_MAX_PER_TENANT")
    # Behind nginx, the client's address comes from X-Forwarded-For, but only on requests whose
    # peer is one of TRUSTED_PROXIES (addresses, CIDR ranges or host names such as `frontend`);
    # anyone else's header is ignored, so a client cannot pick its own rate-limit bucket.
    trust_forwarded_for: bool = Field(False, validation_alias="TRUST_FORWARDED_FOR")
    trusted_proxies: str = Field("127.0.0.1,::1", validation_alias="TRUSTED_PROXIES")
    # console sessions (docs/console.md): a session ends after this long without a request, and
    # this long after sign-in whatever happens
    session_idle_s: int = Field(2 * 3600, ge=60, validation_alias="SESSION_IDLE_S")
    session_max_age_s: int = Field(12 * 3600, ge=60, validation_alias="SESSION_MAX_AGE_S")
    # origins besides PUBLIC_BASE_URL's that may send state-changing requests with a session
    # cookie (comma-separated; e.g. a Vite dev server's), never a tenant's site
    console_extra_origins: str = Field("", validation_alias="CONSOLE_EXTRA_ORIGINS")
    # failed sign-in attempts, per client IP and per email (known or not), each a
    # burst of this many, refilling over the window
    login_failures_per_ip: int = Field(30, ge=1, validation_alias="LOGIN_FAILURES_PER_IP")
    login_failures_per_email: int = Field(5, ge=1, validation_alias="LOGIN_FAILURES_PER_EMAIL")
    login_window_s: int = Field(900, ge=1, validation_alias="LOGIN_WINDOW_S")

    @property
    def key_limit(self) -> Limit:
        return Limit("api_key", self.rate_limit_key_per_min, 60)

    @property
    def login_ip_limit(self) -> Limit:
        return Limit("login_ip", self.login_failures_per_ip, self.login_window_s)

    @property
    def login_email_limit(self) -> Limit:
        return Limit("login_email", self.login_failures_per_email, self.login_window_s)

    @property
    def visitor_limit(self) -> Limit:
        return Limit("visitor", self.rate_limit_visitor_per_min, 60)

    @property
    def ip_limit(self) -> Limit:
        return Limit("ip", self.rate_limit_ip_per_min, 60)

    @property
    def conversation_ip_limit(self) -> Limit:
        return Limit("conversations_per_ip", self.rate_limit_conversations_per_ip_per_hour, 3600)

    @property
    def message_ip_limit(self) -> Limit:
        return Limit("messages_per_ip", self.rate_limit_messages_per_ip_per_hour, 3600)
