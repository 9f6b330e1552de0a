"""The canonical behaviours, and how a reply's intent and sentiment choose one.

Intent decides first (a goodbye waves whatever its tone); otherwise sentiment does:
clearly positive replies look happy, clearly negative ones look sorry, the rest nod along.
"""
from __future__ import annotations

BEHAVIOURS = (
    "idle", "talk", "listen", "think", "greet", "nod", "shake_head", "thumbs_up", "happy", "sad",
    "surprised", "confused", "laugh", "bow", "point", "shrug", "celebrate", "goodbye", "wave", "blink",
)

INTENT_BEHAVIOUR = {
    "greeting": "greet",
    "goodbye": "goodbye",
    "thanks": "bow",
    "complaint": "sad",
    "asks_for_human": "nod",
}


def choose_behaviour(intent: str, sentiment: float, *, answered: bool = True) -> str:
    if intent in INTENT_BEHAVIOUR:
        return INTENT_BEHAVIOUR[intent]
    if not answered:
        return "shrug"
    if sentiment >= 0.5:
        return "happy"
    if sentiment <= -0.4:
        return "sad"
    return "nod"
