from pydantic import Field, model_validator

from common.netguard import AddressPolicy
from common.settings import NetworkList, settings_for


DEV_SECRET_KEY = "dev-insecure-secret-key"


class Settings(settings_for("ai")):
    # tenant provider base URLs must be public addresses (SSRF), checked at every connection.
    # AI_PROVIDER_ALLOW_NETWORKS opens networks on purpose (an OpenAI-compatible server on
    # the operator's own network, e.g. '["10.0.5.0/24"]'; the tests' stand-ins on
    # '["127.0.0.1/32"]'); AI_ALLOW_PRIVATE_PROVIDER_URLS=true opens every network.
    allow_private_provider_urls: bool = Field(False, validation_alias="AI_ALLOW_PRIVATE_PROVIDER_URLS")
    provider_allow_networks: NetworkList = Field(default_factory=list, validation_alias="AI_PROVIDER_ALLOW_NETWORKS")
    # coalesce provider deltas into chunks at most this often (the first goes out at once)
    chunk_interval_ms: float = Field(40.0, validation_alias="CHUNK_INTERVAL_MS")
    # one attempt must produce its first token within this, else the next attempt starts
    first_token_timeout_s: float = Field(20.0, validation_alias="AI_FIRST_TOKEN_TIMEOUT_SECONDS")
    # retries of a retryable error on the same provider before moving to the fallback
    provider_retries: int = Field(2, validation_alias="AI_PROVIDER_RETRIES")
    retry_backoff_s: float = Field(0.5, validation_alias="AI_RETRY_BACKOFF_SECONDS")

    @property
    def ai_deadline_s(self) -> float:
        """The whole reply, provider and fallback included: REPLY_DEADLINE_SECONDS less a
        margin, so the ai's own, more precise failure reaches the visitor before conversation's
        watchdog would fail the reply."""
        return max(5.0, self.reply_deadline_s - 30.0)

    # speech (a chatbot's voice "provider"): the whole request, after which the visitor hears nothing
    tts_timeout_s: float = Field(20.0, validation_alias="AI_TTS_TIMEOUT_SECONDS")

    # platform provider keys; a tenant's own key (PUT /internal/tenants/.../provider-keys) wins
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    openai_default_model: str = Field("gpt-4o-mini", validation_alias="OPENAI_DEFAULT_MODEL")
    anthropic_api_key: str | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, validation_alias="ANTHROPIC_BASE_URL")
    anthropic_default_model: str = Field("claude-haiku-4-5", validation_alias="ANTHROPIC_DEFAULT_MODEL")
    # tenant keys are stored encrypted with a key derived from this; the default is for
    # development only and production refuses it
    secret_key: str = Field(DEV_SECRET_KEY, validation_alias="SECRET_KEY")

    # JSON file {"model": {"prompt": usd_per_1m, "completion": usd_per_1m}} overriding defaults
    prices_file: str | None = Field(None, validation_alias="AI_PRICES_FILE")
    cache_ttl_s: int = Field(3600, validation_alias="AI_CACHE_TTL_SECONDS")

    # knowledge search: <KNOWLEDGE_URL or loopback>/internal/search
    knowledge_url: str | None = Field(None, validation_alias="KNOWLEDGE_URL")
    knowledge_timeout_s: float = Field(3.0, validation_alias="AI_KNOWLEDGE_TIMEOUT_SECONDS")
    history_token_budget: int = Field(1500, validation_alias="AI_HISTORY_TOKEN_BUDGET")
    knowledge_token_budget: int = Field(3000, validation_alias="AI_KNOWLEDGE_TOKEN_BUDGET")

    @property
    def provider_policy(self) -> AddressPolicy:
        return AddressPolicy(["0.0.0.0/0", "::/0"] if self.allow_private_provider_urls
                             else self.provider_allow_networks)

    @model_validator(mode="after")
    def _no_default_secret_in_production(self):
        if self.environment == "production" and self.secret_key in ("", DEV_SECRET_KEY):
            raise ValueError("SECRET_KEY is not set: production refuses the development default")
        return self
