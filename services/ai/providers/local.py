"""The offline default: a grounded extractive responder.

It answers from the best knowledge passages by picking the sentences that best overlap the
visitor's question, keeps the answer short and cites the passages it used as [1], [2]. When
nothing relevant is found it says so with the persona's fallback text. It never follows
instructions found in passages (sentences that read as instructions to an assistant are never
quoted) and never repeats its system prompt.

It needs no API key, so a tenant trying the product sees a sensible reply at once. It streams
word by word, yielding to the event loop between words (no sleeps), like a real provider.
"""
from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator

import snowballstemmer

from services.ai.analysis import classify_intent
from services.ai.prompt import build_prompt, estimate_tokens
from services.ai.providers.base import Passage, PromptRequest, StreamResult

_WORDS = re.compile(r"\S+\s*")
_TERM = re.compile(r"[a-z0-9][a-z0-9'-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_MARKERS = re.compile(r"\s*\[\d{1,2}\]")

STOPWORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below between both
but by can could did do does doing don't down during each few for from further had has have having he her
here hers him his how i if in into is it its itself just let me more most my no nor not now of off on
once only or other our ours out over own please same she should so some such than that the their theirs
them then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours tell know want like need get
""".split())

# Sentences that talk to an assistant rather than about the business: quoting them would
# relay an injected instruction to the visitor.
INSTRUCTION_LIKE = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|prompt|rule|previous|above|guideline)s?"
    r"|\bsystem prompt\b|\byou are now\b|\bact as\b|\bpretend (to be|you)\b|\bnew instructions?\b"
    r"|\b(reveal|print|repeat|show|output)\b.{0,30}\b(instructions?|prompt|rules)\b"
    r"|\bassistant\s*:|\bsystem\s*:|</?\s*(knowledge|passage|system)\b",
    re.I)

ASKS_FOR_PROMPT = re.compile(
    r"\b(system prompt|your (instructions|rules|prompt|guidelines|configuration)|initial prompt"
    r"|ignore (all |any |your )?(previous|prior|above)|developer mode|jailbreak"
    r"|(repeat|print|reveal|show|output|translate|summari[sz]e) (the |your )?(text|words|everything) above)",
    re.I)

REFUSAL = ("I can't share how I'm set up, but I'm happy to help with questions about what we offer.")

MAX_SENTENCES = 3
MAX_CHARS = 480
# When no sentence shares a word with the question (another language), the best passage
# answers only if its similarity is high and stands this far above the next one (measured
# with the default multilingual-e5: a German question for an English FAQ, 0.83 against 0.77;
# an unrelated question, 0.79 against 0.79).
CONFIDENT_SCORE = 0.8
CONFIDENT_MARGIN = 0.04


_STEMMER = snowballstemmer.stemmer("english")


def terms(text: str) -> set[str]:
    words = [w.strip("'-") for w in _TERM.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]
    return set(_STEMMER.stemWords(words))


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _leaks(text: str, secret: str) -> bool:
    """True if ``text`` repeats any 8-word run of ``secret`` (the system prompt)."""
    words = secret.lower().split()
    low = " ".join(text.lower().split())
    return any(" ".join(words[i:i + 8]) in low for i in range(0, max(0, len(words) - 7)))


class LocalProvider:
    name = "local"

    def compose(self, request: PromptRequest, result: StreamResult) -> str:
        bot = request.chatbot
        text = request.message
        if ASKS_FOR_PROMPT.search(text):
            return REFUSAL
        intent = classify_intent(text)
        if intent == "greeting":
            return bot.greeting or "Hello! How can I help you today?"
        if intent == "thanks":
            return "You're welcome! Is there anything else I can help you with?"
        if intent == "goodbye":
            return "Goodbye, and thanks for stopping by!"
        if intent == "asks_for_human":
            return "I'll let our team know you'd like to talk to a person. Someone will get back to you here."
        if intent == "about_bot":
            return self._about(request)
        answer = self._extract(request, result)
        if answer is None or (bot.system_prompt.strip() and _leaks(answer, bot.system_prompt)):
            result.citations = []
            result.answered_from_knowledge = False
            result.used_fallback_text = True
            return bot.fallback_answer
        return answer

    def _about(self, request: PromptRequest) -> str:
        """Who the bot is and what it can help with: the persona's greeting, then the suggested
        questions, else the topics of the passages retrieval found."""
        bot = request.chatbot
        parts = [f"I'm {bot.name}, the assistant on this website."]
        greeting = " ".join(bot.greeting.split())
        if greeting and not greeting.lower().startswith(("hi", "hello", "hey")):
            parts.append(greeting)
        topics = list(dict.fromkeys(q.strip().rstrip("?") + "?" for q in bot.suggested_questions if q.strip()))[:4]
        if topics:
            parts.append("You can ask me things like: " + " ".join(f"\u201c{q}\u201d" for q in topics))
        else:
            titles = list(dict.fromkeys(p.title for p in request.passages if p.title and p.title != "Untitled"))[:3]
            if titles:
                parts.append("I can answer questions about " + ", ".join(titles) + ", and more.")
            else:
                parts.append("Ask me anything about what we offer, and I'll answer from our information.")
        return " ".join(parts)

    def _extract(self, request: PromptRequest, result: StreamResult) -> str | None:
        question = terms(request.message)
        # A follow-up ("how long does it take?") is read with what it refers to: the standalone
        # rewrite when there is one, else the visitor's previous turns. Its own words count
        # double, and sentences the last replies already said are not said again.
        context = terms(request.retrieval_query) if request.retrieval_query else set().union(
            *(terms(h.text) for h in request.history[-4:] if h.role == "visitor"))
        context -= question
        said = {s for h in request.history[-4:] if h.role == "assistant" for s in sentences(_MARKERS.sub("", h.text))}
        if not question and not context:
            return None
        passages = [p for p in request.passages if p.score >= request.chatbot.score_threshold][:5]
        candidates: list[tuple[float, int, int, str]] = []  # (score, passage rank, position, sentence)
        for rank, passage in enumerate(passages):
            title_terms = terms(passage.title)
            for position, sentence in enumerate(sentences(passage.snippet)):
                if INSTRUCTION_LIKE.search(sentence) or sentence in said:
                    continue
                words = terms(sentence)
                overlap = 2 * len(question & words) + len(context & words)
                if not overlap:
                    continue
                # overlap first; a passage ranked higher, and one whose title matches, breaks ties
                score = overlap + 0.5 * len(question & title_terms) / max(len(question), 1) - 0.1 * rank
                candidates.append((score, rank, position, sentence))
        if not candidates:
            return self._by_meaning(passages, result)
        candidates.sort(key=lambda c: -c[0])
        best = candidates[0][0]
        chosen: list[tuple[int, int, str]] = []
        length = 0
        for score, rank, position, sentence in candidates:
            if len(chosen) == MAX_SENTENCES or (chosen and score < best / 2):
                break
            if chosen and length + len(sentence) > MAX_CHARS:
                continue
            chosen.append((rank, position, sentence))
            length += len(sentence)
        # read in document order, grouped by passage, so the answer flows
        chosen.sort(key=lambda c: (c[0], c[1]))
        cited: list[Passage] = []
        groups: list[list[str]] = []  # consecutive sentences of one passage share one marker
        for rank, _, sentence in chosen:
            passage = passages[rank]
            if passage not in cited:
                cited.append(passage)
                groups.append([])
            groups[cited.index(passage)].append(sentence if sentence.endswith((".", "!", "?")) else sentence + ".")
        parts = [f"{' '.join(group)} [{number}]" for number, group in enumerate(groups, start=1)]
        result.citations = [p.citation() for p in cited]
        result.answered_from_knowledge = True
        return " ".join(parts)

    def _by_meaning(self, passages: list[Passage], result: StreamResult) -> str | None:
        """No sentence shares a word with the question, as when a visitor asks in another
        language than the documents. When the search is clearly sure of one passage (the
        multilingual embedder's similarity stands out), its opening sentences answer;
        otherwise the fallback does."""
        if not passages:
            return None
        scores = sorted((p.score for p in passages), reverse=True)
        best = max(passages, key=lambda p: p.score)
        margin = scores[0] - (scores[1] if len(scores) > 1 else 0.0)
        if scores[0] < CONFIDENT_SCORE or margin < CONFIDENT_MARGIN:
            return None
        chosen, length = [], 0
        for sentence in sentences(best.snippet):
            if INSTRUCTION_LIKE.search(sentence):
                continue
            if chosen and length + len(sentence) > MAX_CHARS:
                break
            chosen.append(sentence if sentence.endswith((".", "!", "?")) else sentence + ".")
            length += len(sentence)
            if len(chosen) == 2:
                break
        if not chosen:
            return None
        result.citations = [best.citation()]
        result.answered_from_knowledge = True
        return " ".join(chosen) + " [1]"

    async def stream(self, request: PromptRequest, result: StreamResult) -> AsyncIterator[str]:
        prompt = request.prompt or build_prompt(request.chatbot, request.message, request.history,
                                                request.passages)
        request.passages = list(prompt.passages)  # only what fit the prompt
        text = self.compose(request, result)
        result.prompt_tokens = prompt.estimated_tokens
        for word in _WORDS.findall(text):
            yield word
            await asyncio.sleep(0)
        result.completion_tokens = estimate_tokens(text)
        result.finish_reason = "stop"
