"""What a reply cost: a price table in USD per 1M tokens, prompt and completion.

The defaults are list prices of common models; an operator overrides or adds models with a
JSON file named by ``AI_PRICES_FILE``::

    {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}, "my-vllm-model": {"prompt": 0, "completion": 0}}

A model missing from the table costs 0 and is logged once, so the ledger never blocks a reply.
Dated model names (``claude-3-5-haiku-20241022``) fall back to the longest known prefix.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Price:
    prompt: float      # USD per 1M prompt tokens
    completion: float  # USD per 1M completion tokens


DEFAULT_PRICES: dict[str, Price] = {
    "local-extractive": Price(0, 0),
    "local": Price(0, 0),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-3-opus": Price(15.00, 75.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-haiku-4": Price(1.00, 5.00),
    "claude-opus-4-5": Price(5.00, 25.00),
}


class PriceTable:
    def __init__(self, prices: dict[str, Price] | None = None):
        self.prices = dict(DEFAULT_PRICES if prices is None else prices)
        self._unknown_logged: set[str] = set()

    @classmethod
    def load(cls, path: str | None) -> "PriceTable":
        table = cls()
        if path:
            raw = json.loads(Path(path).read_text())
            for model, price in raw.items():
                table.prices[model] = Price(float(price["prompt"]), float(price["completion"]))
            log.info("prices_loaded", path=path, models=len(raw))
        return table

    def price(self, model: str, provider: str = "") -> Price | None:
        if provider == "local":
            return Price(0, 0)
        if model in self.prices:
            return self.prices[model]
        base = model.split("/")[-1]  # OpenRouter style "openai/gpt-4o"
        matches = [name for name in self.prices if base.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, provider: str = "") -> float:
        price = self.price(model, provider)
        if price is None:
            if model not in self._unknown_logged:
                self._unknown_logged.add(model)
                log.warning("model_price_unknown", model=model)
            return 0.0
        return round((prompt_tokens * price.prompt + completion_tokens * price.completion) / 1_000_000, 6)
