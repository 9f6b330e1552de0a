"""What a follow-up searches for. With an LLM provider, a short rewrite call turns "how long
does it take?" into a standalone question, once per turn; when the rewrite fails or is too
slow, knowledge reads the message with the conversation instead, and the reply goes on."""
from __future__ import annotations

import uuid

from common import events as ev
from services.ai.retrieval import REWRITE_SYSTEM
from scripts.loopback import Ok, SlowFirst, Status

REPAIRS = {"title": "Repairs", "url": "https://acme.test/repairs", "score": 0.8,
           "snippet": "We repair e-bikes. A yearly service takes one working day."}
HISTORY = [ev.HistoryMessage(role="visitor", text="Do you repair e-bikes?"),
           ev.HistoryMessage(role="assistant", text="Yes, we repair e-bikes in our workshop.")]


def is_rewrite(request: dict) -> bool:
    return request["messages"][0]["content"] == REWRITE_SYSTEM


async def test_an_llm_rewrites_a_follow_up_once_per_turn(ai):
    ai.knowledge.passages = [REPAIRS]
    ai.openai.script = [Ok(["How long does an e-bike repair take?"], prompt_tokens=60, completion_tokens=9),
                        Ok(["A yearly service takes one working day [1]."])]
    event = ai.request("How long does it take?", history=HISTORY, provider="openai", model="gpt-4o-mini")
    done = await ai.ask(event)
    assert isinstance(done, ev.AiReplyCompletedEvent) and done.text == "A yearly service takes one working day [1]."
    rewrite, reply = ai.openai.requests
    assert is_rewrite(rewrite) and not is_rewrite(reply)
    assert rewrite["max_tokens"] <= 60 and "Do you repair e-bikes?" in rewrite["messages"][1]["content"]
    assert ai.knowledge.requests[-1]["query"] == "How long does an e-bike repair take?"
    assert ai.knowledge.requests[-1]["context"] == []

    # the same turn again (a redelivery after a crash, say), with knowledge changed meanwhile so
    # the reply cache does not answer: the rewrite is not paid twice
    ai.knowledge.version = 2
    ai.openai.script = [Ok(["A yearly service takes one working day [1]."])]
    again = ev.AiReplyRequestedEvent.model_validate({**event.model_dump(), "reply_id": str(uuid.uuid4()),
                                                     "event_id": str(uuid.uuid4())})
    await ai.ask(again)
    assert len(ai.openai.requests) == 3 and not is_rewrite(ai.openai.requests[-1])
    assert ai.knowledge.requests[-1]["query"] == "How long does an e-bike repair take?"


async def test_a_failed_or_slow_rewrite_falls_back_to_the_conversation(ai):
    ai.knowledge.passages = [REPAIRS]
    for failure in (Status(500), SlowFirst(["too late"], hold_s=10)):
        ai.openai.requests.clear()
        ai.openai.script = [failure, Ok(["One working day [1]."])]
        event = ai.request("How long does it take?", history=HISTORY, provider="openai", model="gpt-4o-mini")
        done = await ai.ask(event)
        assert isinstance(done, ev.AiReplyCompletedEvent) and done.text == "One working day [1]."
        search = ai.knowledge.requests[-1]
        assert search["query"] == "How long does it take?"
        assert search["context"] == ["Do you repair e-bikes?", "Yes, we repair e-bikes in our workshop."]


async def test_a_question_that_stands_alone_is_not_rewritten(ai):
    ai.knowledge.passages = [REPAIRS]
    ai.openai.script = [Ok(["We are open until six [1]."])]
    event = ai.request("What are your opening hours on Saturday?", history=HISTORY, provider="openai",
                       model="gpt-4o-mini")
    await ai.ask(event)
    assert len(ai.openai.requests) == 1 and not is_rewrite(ai.openai.requests[0])
    assert ai.knowledge.requests[-1]["query"] == "What are your opening hours on Saturday?"


async def test_the_local_provider_searches_with_the_conversation(ai):
    ai.knowledge.passages = [REPAIRS]
    event = ai.request("How long does it take?", history=HISTORY)
    done = await ai.ask(event)
    assert "one working day" in done.text and done.answered_from_knowledge
    assert ai.knowledge.requests[-1]["context"] == ["Do you repair e-bikes?", "Yes, we repair e-bikes in our workshop."]
    assert ai.openai.requests == []
