"""LLM providers behind one small interface: ``stream(request)`` yields text pieces."""
from services.ai.providers.base import Provider, ProviderError, PromptRequest, StreamResult
from services.ai.providers.local import LocalProvider

__all__ = ["Provider", "ProviderError", "PromptRequest", "StreamResult", "LocalProvider"]
