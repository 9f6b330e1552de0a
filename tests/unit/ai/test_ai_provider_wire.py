"""The openai and anthropic providers against loopback servers speaking the real wire formats:
what text the visitor would get, the usage we bill, and the failure code of each fault."""
import openai
import anthropic
import pytest

import httpx2

from common.netguard import AddressPolicy, guarded_http_client
from scripts.loopback import Break, EndsEarly, Ok, Redirect, Status, StreamError
from services.ai.prompt import build_prompt
from services.ai.providers.anthropic_messages import AnthropicProvider
from services.ai.providers.base import Passage, PromptRequest, ProviderError, StreamResult
from services.ai.providers.openai_chat import OpenAIProvider
from common.events import HistoryMessage

PASSAGES = [Passage(title="Returns", url="https://acme.test/returns",
                    snippet="You can return a bike within 30 days.", score=0.9)]


def make_request(bot, model):
    history = [HistoryMessage(role="assistant", text="Hi!"), HistoryMessage(role="visitor", text="I bought a bike."),
               HistoryMessage(role="assistant", text="Great choice.")]
    prompt = build_prompt(bot, "Can I return it?", history, PASSAGES)
    return PromptRequest(chatbot=bot, message="Can I return it?", history=history, passages=PASSAGES,
                         model=model, prompt=prompt)


def openai_provider(fake, key="sk-test-1234567890"):
    return OpenAIProvider(openai.AsyncOpenAI(api_key=key, base_url=fake.url + "/v1", max_retries=0, timeout=5))


def anthropic_provider(fake, key="sk-ant-test-1234567890"):
    return AnthropicProvider(anthropic.AsyncAnthropic(api_key=key, base_url=fake.url, max_retries=0, timeout=5))


async def collect(provider, request):
    result = StreamResult()
    pieces = []
    error = None
    try:
        async for piece in provider.stream(request, result):
            pieces.append(piece)
    except ProviderError as exc:
        error = exc
    return "".join(pieces), result, error


# --- OpenAI ----------------------------------------------------------------------------------

async def test_openai_streams_text_and_usage(openai_fake, bot):
    openai_fake.script = [Ok(["You can ", "return it ", "within 30 days [1]."], prompt_tokens=120,
                             completion_tokens=11)]
    text, result, error = await collect(openai_provider(openai_fake), make_request(bot, "gpt-4o-mini"))
    assert error is None
    assert text == "You can return it within 30 days [1]."
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (120, 11, "stop")
    sent = openai_fake.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == bot.max_tokens
    assert sent["temperature"] == bot.temperature
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "assistant", "user", "assistant", "user"]
    assert "<knowledge>" in sent["messages"][1]["content"] and "30 days" in sent["messages"][1]["content"]
    assert sent["messages"][-1]["content"] == "Can I return it?"
    assert openai_fake.headers[0]["authorization"] == "Bearer sk-test-1234567890"


@pytest.mark.parametrize("status, code, retryable", [
    (429, "rate_limited", True), (500, "provider_unavailable", True), (503, "provider_unavailable", True),
    (401, "auth_failed", False), (404, "bad_request", False)])
async def test_openai_error_statuses_map_to_codes(openai_fake, bot, status, code, retryable):
    openai_fake.script = [Status(status)]
    text, _, error = await collect(openai_provider(openai_fake), make_request(bot, "gpt-4o-mini"))
    assert text == ""
    assert (error.code, error.retryable) == (code, retryable)
    assert len(openai_fake.requests) == 1  # the SDK's own retries are off: ours decide


@pytest.mark.parametrize("behaviour", [Break(["You can ", "return"]), EndsEarly(["You can ", "return"]),
                                       StreamError(["You can ", "return"])])
async def test_openai_stream_broken_midway(openai_fake, bot, behaviour):
    openai_fake.script = [behaviour]
    text, _, error = await collect(openai_provider(openai_fake), make_request(bot, "gpt-4o-mini"))
    assert text == "You can return"
    assert error.code == "stream_interrupted" and error.retryable


# --- Anthropic -------------------------------------------------------------------------------

async def test_anthropic_streams_text_and_usage(anthropic_fake, bot):
    anthropic_fake.script = [Ok(["You can ", "return it ", "within 30 days [1]."], prompt_tokens=130,
                                completion_tokens=12)]
    text, result, error = await collect(anthropic_provider(anthropic_fake), make_request(bot, "claude-haiku-4-5"))
    assert error is None
    assert text == "You can return it within 30 days [1]."
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (130, 12, "end_turn")
    sent = anthropic_fake.requests[0]
    assert sent["stream"] is True and sent["model"] == "claude-haiku-4-5"
    assert sent["max_tokens"] == bot.max_tokens and "temperature" not in sent
    assert "You help customers of Acme Bikes." in sent["system"] and "<knowledge>" in sent["system"]
    # turns start with the visitor and alternate (the leading assistant greeting is dropped)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == "Can I return it?"
    assert anthropic_fake.headers[0]["authorization"] == "Bearer sk-ant-test-1234567890"


@pytest.mark.parametrize("status, code, retryable", [
    (429, "rate_limited", True), (500, "provider_unavailable", True), (529, "provider_unavailable", True),
    (401, "auth_failed", False), (404, "bad_request", False)])
async def test_anthropic_error_statuses_map_to_codes(anthropic_fake, bot, status, code, retryable):
    anthropic_fake.script = [Status(status)]
    text, _, error = await collect(anthropic_provider(anthropic_fake), make_request(bot, "claude-haiku-4-5"))
    assert text == ""
    assert (error.code, error.retryable) == (code, retryable)
    assert len(anthropic_fake.requests) == 1


async def test_anthropic_error_event_in_stream(anthropic_fake, bot):
    anthropic_fake.script = [StreamError(["You can "], kind="overloaded_error")]
    text, _, error = await collect(anthropic_provider(anthropic_fake), make_request(bot, "claude-haiku-4-5"))
    assert text == "You can "
    assert error.code == "provider_unavailable" and error.retryable


@pytest.mark.parametrize("behaviour", [Break(["You can ", "return"]), EndsEarly(["You can ", "return"])])
async def test_anthropic_stream_broken_midway(anthropic_fake, bot, behaviour):
    anthropic_fake.script = [behaviour]
    text, _, error = await collect(anthropic_provider(anthropic_fake), make_request(bot, "claude-haiku-4-5"))
    assert text == "You can return"
    assert error.code == "stream_interrupted" and error.retryable


# --- a tenant's base URL through the guarded transport (SSRF) ---------------------------------

def guarded(make, fake, policy: AddressPolicy, base_url: str | None = None):
    http = guarded_http_client(policy, timeout=httpx2.Timeout(5))
    if make is OpenAIProvider:
        return OpenAIProvider(openai.AsyncOpenAI(api_key="sk-test-1234567890", base_url=base_url or fake.url + "/v1",
                                                 max_retries=0, http_client=http))
    return AnthropicProvider(anthropic.AsyncAnthropic(api_key="sk-ant-test-1234567890", base_url=base_url or fake.url,
                                                      max_retries=0, http_client=http))


@pytest.mark.parametrize("make", [OpenAIProvider, AnthropicProvider])
async def test_a_redirect_from_the_provider_is_not_followed(openai_fake, anthropic_fake, bot, make):
    fake = openai_fake if make is OpenAIProvider else anthropic_fake
    inside = fake.url + "/inside"  # stands for an internal service; the fake would log a hit
    fake.script = [Redirect(inside)]
    _, _, error = await collect(guarded(make, fake, AddressPolicy(["127.0.0.1/32"])), make_request(bot, "m"))
    assert (error.code, error.retryable) == ("provider_redirected", False)
    assert len(fake.requests) == 1  # the 307 itself; nothing followed it


@pytest.mark.parametrize("make", [OpenAIProvider, AnthropicProvider])
async def test_a_base_url_leading_inside_is_refused_at_connect_time_with_one_answer(openai_fake, anthropic_fake,
                                                                                     bot, make):
    fake = openai_fake if make is OpenAIProvider else anthropic_fake
    fake.script = [Ok(["never"])]
    provider = guarded(make, fake, AddressPolicy())  # the fake is on loopback: not a public address
    _, _, error = await collect(provider, make_request(bot, "m"))
    assert (error.code, error.retryable) == ("provider_address_blocked", False)
    assert str(fake.server.port) not in str(error) and "127.0.0.1" not in str(error)
    _, _, closed_port = await collect(guarded(make, fake, AddressPolicy(), base_url="http://127.0.0.1:9/v1"),
                                      make_request(bot, "m"))
    assert closed_port.code == error.code and str(closed_port) == str(error)  # no oracle: open or closed
    assert fake.requests == []
