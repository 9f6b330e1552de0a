"""The provider chain against loopback providers: retries with backoff, the fallback provider
taking over, the first-token timeout, a stream breaking in the middle, the overall deadline."""
import uuid

import pytest

from scripts.loopback import Break, Hang, Ok, SlowFirst, Status
from services.ai.keyvault import KeyVault
from services.ai.prompt import build_prompt
from services.ai.providers.base import PromptRequest
from services.ai.providers.registry import ProviderRegistry
from services.ai.service import ReplyPolicy, stream_with_fallback
from services.ai.settings import Settings

TENANT = uuid.uuid4()


def registry(openai_fake=None, anthropic_fake=None, **settings):
    config = Settings(database_url="postgresql://unused", openai_api_key="sk-platform-openai-0001" if openai_fake else None,
                      openai_base_url=openai_fake.url + "/v1" if openai_fake else None,
                      anthropic_api_key="sk-ant-platform-0001" if anthropic_fake else None,
                      anthropic_base_url=anthropic_fake.url if anthropic_fake else None,
                      first_token_timeout_s=5, **settings)
    return ProviderRegistry(config, None, KeyVault("test-secret"))


class Visitor:
    """What the visitor's stream shows: each attempt restarts it."""

    def __init__(self):
        self.attempts: list[tuple[str, str, int]] = []
        self.text = ""
        self.restarts = 0

    async def on_attempt(self, provider, model, n):
        if self.text:
            self.restarts += 1
        self.attempts.append((provider, model, n))
        self.text = ""

    async def emit(self, text):
        self.text += text


def request_for(bot, message="How long is the warranty?"):
    prompt = build_prompt(bot, message, [], [])
    return PromptRequest(chatbot=bot, message=message, history=[], model="", prompt=prompt)


POLICY = ReplyPolicy(deadline_s=20, first_token_timeout_s=5, retries=2, backoff_s=0.01, chunk_interval_s=0.0)


async def run(bot, reg, chain, policy=POLICY):
    visitor = Visitor()
    outcome = await stream_with_fallback(request_for(bot), chain, reg, TENANT, policy, visitor.on_attempt,
                                         visitor.emit)
    return outcome, visitor


async def test_rate_limit_is_retried_then_answers(openai_fake, bot):
    openai_fake.script = [Status(429), Status(500), Ok(["Two ", "years."])]
    reg = registry(openai_fake)
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini")])
    assert visitor.text == outcome.text == "Two years."
    assert [a[2] for a in visitor.attempts] == [1, 2, 3]
    assert outcome.provider == "openai" and not outcome.fallback_used
    await reg.close()


async def test_fallback_provider_takes_over_when_primary_keeps_failing(openai_fake, anthropic_fake, bot):
    openai_fake.script = [Status(500)]
    anthropic_fake.script = [Ok(["Our warranty ", "lasts two years."])]
    reg = registry(openai_fake, anthropic_fake)
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")])
    assert visitor.text == "Our warranty lasts two years."
    assert (outcome.provider, outcome.model, outcome.fallback_used) == ("anthropic", "claude-haiku-4-5", True)
    assert len(openai_fake.requests) == 3  # first try and two retries
    await reg.close()


async def test_auth_error_is_not_retried(openai_fake, anthropic_fake, bot):
    openai_fake.script = [Status(401)]
    anthropic_fake.script = [Ok(["Fine."])]
    reg = registry(openai_fake, anthropic_fake)
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")])
    assert len(openai_fake.requests) == 1
    assert outcome.provider == "anthropic" and visitor.text == "Fine."
    await reg.close()


async def test_slow_first_token_moves_to_fallback(openai_fake, anthropic_fake, bot):
    openai_fake.script = [SlowFirst(["too late"])]
    anthropic_fake.script = [Ok(["On time."])]
    reg = registry(openai_fake, anthropic_fake)
    policy = ReplyPolicy(deadline_s=20, first_token_timeout_s=0.3, retries=2, backoff_s=0.01, chunk_interval_s=0)
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")], policy)
    assert visitor.text == "On time." and outcome.provider == "anthropic"
    assert len(openai_fake.requests) == 1  # too slow to start: not retried while a fallback is left
    await reg.close()


async def test_slow_first_token_everywhere_fails_with_its_code(anthropic_fake, bot):
    anthropic_fake.script = [SlowFirst(["too late"])]
    reg = registry(anthropic_fake=anthropic_fake)
    policy = ReplyPolicy(deadline_s=20, first_token_timeout_s=0.2, retries=1, backoff_s=0.01, chunk_interval_s=0)
    with pytest.raises(Exception) as info:
        await run(bot, reg, [("anthropic", "claude-haiku-4-5")], policy)
    assert info.value.code == "first_token_timeout"
    assert len(anthropic_fake.requests) == 2
    await reg.close()


async def test_stream_breaking_midway_restarts_the_reply(openai_fake, anthropic_fake, bot):
    openai_fake.script = [Break(["Our warranty ", "la"])]
    anthropic_fake.script = [Ok(["Our warranty ", "lasts two years."])]
    reg = registry(openai_fake, anthropic_fake)
    policy = ReplyPolicy(deadline_s=20, first_token_timeout_s=5, retries=0, backoff_s=0.01, chunk_interval_s=0)
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")], policy)
    assert visitor.restarts == 1  # the visitor saw "Our warranty la", then the stream started over
    assert visitor.text == outcome.text == "Our warranty lasts two years."
    await reg.close()


async def test_overall_deadline(openai_fake, bot):
    openai_fake.script = [Hang(["Our warranty "])]
    reg = registry(openai_fake)
    policy = ReplyPolicy(deadline_s=0.5, first_token_timeout_s=5, retries=2, backoff_s=0.01, chunk_interval_s=0)
    with pytest.raises(Exception) as info:
        await run(bot, reg, [("openai", "gpt-4o-mini")], policy)
    assert info.value.code == "deadline_exceeded"
    await reg.close()


async def test_unconfigured_provider_falls_back_to_local(bot):
    reg = registry()
    outcome, visitor = await run(bot, reg, [("openai", "gpt-4o-mini"), ("local", "local-extractive")])
    assert outcome.provider == "local" and visitor.text == bot.fallback_answer
