"""The knowledge service's internal search, as the reply pipeline sees it.

Knowledge is an aid, not a dependency: when the service is down, slow, missing the endpoint
or answers nonsense, the reply goes on without passages (and a warning is logged).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import aiohttp

from common.logging import get_contextvars, get_logger
from services.ai.providers.base import Passage

log = get_logger(__name__)


@dataclass
class Retrieved:
    passages: list[Passage] = field(default_factory=list)
    # None when the search did not answer: the reply is then never cached
    knowledge_version: int | None = None


class KnowledgeClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, timeout_s: float = 3.0):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    async def search(self, tenant_id: uuid.UUID, chatbot_id: uuid.UUID, query: str, *, top_k: int,
                     score_threshold: float, context: list[str] | None = None) -> Retrieved:
        """``context``: the visitor's previous turns, for a follow-up knowledge reads in context."""
        body = {"tenant_id": str(tenant_id), "chatbot_id": str(chatbot_id), "query": query[:8000],
                "top_k": top_k, "score_threshold": score_threshold,
                "context": [turn[:8000] for turn in (context or [])][-4:]}
        headers = {}
        if cid := get_contextvars().get("correlation_id"):
            headers["X-Correlation-ID"] = cid
        try:
            async with self.session.post(f"{self.base_url}/internal/search", json=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                if resp.status != 200:
                    log.warning("knowledge_search_unavailable", status=resp.status)
                    return Retrieved()
                data = await resp.json(content_type=None)
            passages = [Passage(title=str(item.get("title") or "Untitled"), snippet=str(item["snippet"]),
                                score=float(item.get("score") or 0.0), url=item.get("url"),
                                document_id=_str(item.get("document_id")), chunk_id=_str(item.get("chunk_id")),
                                heading_path=item.get("heading_path"))
                        for item in data.get("data") or [] if item.get("snippet")]
            # knowledge returns them best first by its fused ranking; ``score`` is only the
            # cosine similarity, so re-sorting by it would undo the lexical side
            version = data.get("knowledge_version")
            return Retrieved(passages=passages[:top_k] if top_k else passages,
                                knowledge_version=int(version) if version is not None else None)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("knowledge_search_failed", error=repr(exc)[:200])
            return Retrieved()


def _str(value) -> str | None:
    return None if value is None else str(value)
