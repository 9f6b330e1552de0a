"""Sentiment and intent of a message, for the avatar and for analytics.

Sentiment comes from VADER (vaderSentiment: a maintained lexicon with negation and emphasis
rules, no model to download); intents from ordered rules, first match wins.
"""
from __future__ import annotations

import re

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

INTENTS = ("greeting", "question", "thanks", "complaint", "goodbye", "asks_for_human", "about_bot", "other")

_RULES: list[tuple[str, re.Pattern]] = [
    ("asks_for_human", re.compile(
        r"\b(human|real person|agent|operator|representative|someone real|talk to (a )?person|speak to (a )?person"
        r"|customer service|support staff)\b", re.I)),
    ("complaint", re.compile(
        r"\b(terrible|awful|broken|doesn'?t work|not working|angry|disappointed|refund|worst|useless|complain)", re.I)),
    ("thanks", re.compile(r"\b(thanks|thank you|thx|cheers|appreciate)\b", re.I)),
    # questions about the assistant itself, answered from the persona, not the knowledge base
    ("about_bot", re.compile(
        r"\b(who|what) are you\b|\bwhat('s| is) your name\b|\bare you an? (bot|robot|ai|human|real person)\b"
        r"|\bwhat (can|could|do) you (do|help( me)?( with)?|answer|tell me( about)?)\b|\bhow can you help\b"
        r"|\bwhat (can|should|may) i ask( you)?\b|\bintroduce yourself\b|\bwhat is this (chat|bot)\b"
        r"|\bwer bist du\b|\bwobei kannst du\b|\bqui (es-tu|êtes-vous)\b|\bquién eres\b|\bquem é você\b"
        r"|\bchi sei\b", re.I)),
    ("goodbye", re.compile(r"^\s*(bye|goodbye|see you|see ya|farewell|good night)\b", re.I)),
    ("greeting", re.compile(r"^\s*(hi|hello|hey|good (morning|afternoon|evening)|greetings|howdy)\b[\s!.,]*$", re.I)),
    ("question", re.compile(r"\?\s*$|^\s*(what|how|why|when|where|who|which|can|could|do|does|is|are|will|should)\b",
                            re.I)),
]

_analyzer = SentimentIntensityAnalyzer()


def classify_intent(text: str) -> str:
    for intent, pattern in _RULES:
        if pattern.search(text):
            return intent
    return "other"


def sentiment(text: str) -> float:
    """VADER's compound score in [-1, 1]."""
    return _analyzer.polarity_scores(text)["compound"] if text.strip() else 0.0
