"""Which provider object serves a (tenant, provider name): the tenant's own key wins over the
platform's; SDK clients are built once per key and base URL and reused (they pool connections).

A tenant's key may name its own base URL, so its client goes through ``common.netguard``'s
guarded transport: the address is checked at every connection, and redirects are not
followed. The platform's own keys and URLs are the operator's and are used as configured.

SDK retries are off: the reply pipeline retries with its own backoff, first-token timeout and
deadline, and moves to the fallback provider, which the SDK cannot know about.
"""
from __future__ import annotations

import hashlib
import uuid

import anthropic
import asyncpg
import httpx2
import openai

from common.logging import get_logger
from common.netguard import guarded_http_client
from services.ai import repository
from services.ai.keyvault import InvalidToken, KeyVault
from services.ai.providers.anthropic_messages import AnthropicProvider
from services.ai.providers.base import NOT_CONFIGURED, Provider, ProviderError
from services.ai.providers.local import LocalProvider
from services.ai.providers.openai_chat import OpenAIProvider
from services.ai.settings import Settings

log = get_logger(__name__)

KEYED_PROVIDERS = ("openai", "anthropic")
LOCAL_MODEL = "local-extractive"


class ProviderRegistry:
    def __init__(self, settings: Settings, pool: asyncpg.Pool | None, vault: KeyVault):
        self.settings = settings
        self.pool = pool
        self.vault = vault
        self.local = LocalProvider()
        self._clients: dict[tuple[str, str, str | None, bool], Provider] = {}

    def default_model(self, name: str) -> str:
        return {"openai": self.settings.openai_default_model,
                "anthropic": self.settings.anthropic_default_model}.get(name, LOCAL_MODEL)

    def _platform(self, name: str) -> tuple[str | None, str | None]:
        if name == "openai":
            return self.settings.openai_api_key, self.settings.openai_base_url
        return self.settings.anthropic_api_key, self.settings.anthropic_base_url

    async def get(self, tenant_id: uuid.UUID, name: str) -> Provider:
        if name == "local":
            return self.local
        if name not in KEYED_PROVIDERS:
            raise ProviderError(NOT_CONFIGURED, f"unknown provider {name!r}", retryable=False)
        api_key, base_url = await self._tenant_key(tenant_id, name)
        tenant_aimed = bool(api_key)
        if not api_key:
            api_key, base_url = self._platform(name)
        if not api_key:
            raise ProviderError(NOT_CONFIGURED, f"no {name} API key for this tenant or platform", retryable=False)
        return self._client(name, api_key, base_url, guarded=tenant_aimed)

    async def _tenant_key(self, tenant_id: uuid.UUID, name: str) -> tuple[str | None, str | None]:
        if self.pool is None:
            return None, None
        async with self.pool.acquire() as conn:
            row = await repository.get_provider_key_secret(conn, tenant_id, name)
        if row is None:
            return None, None
        try:
            return self.vault.decrypt(row["key_ciphertext"]), row["base_url"]
        except InvalidToken:
            # SECRET_KEY changed since the key was stored: fall back to the platform key
            log.error("provider_key_undecryptable", provider=name, tenant_id=str(tenant_id))
            return None, None

    def _client(self, name: str, api_key: str, base_url: str | None, *, guarded: bool) -> Provider:
        fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
        key = (name, fingerprint, base_url, guarded)
        provider = self._clients.get(key)
        if provider is None:
            # read: the longest silence between two chunks; the first token has its own limit
            timeout = httpx2.Timeout(self.settings.ai_deadline_s, connect=5.0,
                                     read=max(self.settings.first_token_timeout_s, 5.0))
            http = guarded_http_client(self.settings.provider_policy, timeout=timeout) if guarded else None
            if name == "openai":
                provider = OpenAIProvider(openai.AsyncOpenAI(api_key=api_key, base_url=base_url or None,
                                                             max_retries=0, timeout=timeout, http_client=http))
            else:
                provider = AnthropicProvider(anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url or None,
                                                                      max_retries=0, timeout=timeout,
                                                                      http_client=http))
            self._clients[key] = provider
        return provider

    async def close(self) -> None:
        for provider in self._clients.values():
            try:
                await provider.client.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        self._clients.clear()
