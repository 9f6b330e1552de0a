"""The local provider: grounded, short, cited answers; the persona's greeting and fallback."""
import re

from common.events import ChatbotSnapshot
from services.ai.prompt import build_prompt
from services.ai.providers.base import Passage, PromptRequest, StreamResult
from services.ai.providers.local import LocalProvider

BOT = ChatbotSnapshot(chatbot_id="00000000-0000-0000-0000-000000000002", name="Ava", greeting="Hi, I'm Ava!",
                      fallback_answer="Sorry, our documents don't cover that.")

SHIPPING = Passage(title="Shipping", url="https://acme.test/shipping", score=0.82,
                   snippet="We ship to all EU countries. Standard shipping takes 3 to 5 business days. "
                           "Express shipping arrives the next day and costs 12 EUR. Our office dog is called Rex.")
RETURNS = Passage(title="Returns", url="https://acme.test/returns", score=0.61,
                  snippet="Bikes can be returned within 30 days of delivery. Returns of express orders are free.")


async def ask(message, passages, bot=BOT):
    request = PromptRequest(chatbot=bot, message=message, history=[], passages=passages, model="local-extractive",
                            prompt=build_prompt(bot, message, [], passages))
    result = StreamResult()
    pieces = [piece async for piece in LocalProvider().stream(request, result)]
    return pieces, result


async def test_answers_from_the_best_sentences_with_citations():
    pieces, result = await ask("How long does express shipping take and what does it cost?", [SHIPPING, RETURNS])
    text = "".join(pieces)
    assert "Express shipping arrives the next day and costs 12 EUR." in text
    assert "Rex" not in text  # irrelevant sentences are left out
    assert re.search(r"\[1\]", text)
    assert result.citations[0].title == "Shipping" and result.answered_from_knowledge
    assert len(pieces) > 5  # streamed word by word


async def test_cites_several_passages_in_order():
    _, result = await ask("Are returns of express shipping orders free?", [SHIPPING, RETURNS])
    text = "".join(_)
    assert "Returns of express orders are free." in text
    numbers = [int(n) for n in re.findall(r"\[(\d)\]", text)]
    assert max(numbers) == len(result.citations)


async def test_says_plainly_when_nothing_is_relevant():
    pieces, result = await ask("Do you sell skateboards in Brazil?", [RETURNS])
    assert "".join(pieces) == BOT.fallback_answer
    assert result.citations == [] and not result.answered_from_knowledge and result.used_fallback_text


async def test_no_passages_at_all():
    pieces, result = await ask("What are your opening hours?", [])
    assert "".join(pieces) == BOT.fallback_answer


async def test_greets_with_the_persona_greeting():
    pieces, _ = await ask("Hello!", [SHIPPING])
    assert "".join(pieces) == "Hi, I'm Ava!"


async def test_passages_below_the_threshold_are_ignored():
    bot = BOT.model_copy(update={"score_threshold": 0.9})
    pieces, _ = await ask("How long does express shipping take?", [SHIPPING], bot)
    assert "".join(pieces) == BOT.fallback_answer


async def test_reports_usage():
    _, result = await ask("How long does standard shipping take?", [SHIPPING])
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
