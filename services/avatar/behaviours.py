"""The canonical behaviours, how a reply's intent and sentiment choose one, and how a
behaviour becomes a clip of a given model.

``BEHAVIOURS`` is the one list of behaviour names: the default avatar names its clips after
it, animation maps are keyed by it, and the library route lists it.

Choosing: intent decides first (a goodbye waves whatever its tone); a reply the knowledge base
could not answer shrugs; otherwise sentiment does: clearly positive replies look happy, clearly
negative ones look sorry, the rest nod along. docs/avatar.md has the full table.
"""
from __future__ import annotations

import re

BEHAVIOURS: tuple[str, ...] = (
    "idle", "talk", "listen", "think", "greet", "nod", "shake_head", "thumbs_up", "happy", "sad",
    "surprised", "confused", "laugh", "bow", "point", "shrug", "celebrate", "goodbye", "wave", "blink",
)

DESCRIPTIONS: dict[str, str] = {
    "idle": "Resting loop: subtle breathing bob and sway. Played between replies.",
    "talk": "Talking loop: the mouth/jaw moves. Played while a reply streams.",
    "listen": "Attentive loop: head tilted towards the visitor while they type.",
    "think": "Thinking: hand to chin, eyes up. Played while waiting for the first token.",
    "greet": "Hello: a wave with a little hop, for greetings.",
    "nod": "Yes: the head nods. The neutral acknowledgement.",
    "shake_head": "No: the head shakes.",
    "thumbs_up": "Thumbs up: approval, for thanks and confirmations.",
    "happy": "Happy: a bounce with a smile, for clearly positive replies.",
    "sad": "Sad/sorry: head and shoulders drop, for complaints and negative replies.",
    "surprised": "Surprised: eyes and mouth open wide, a small jump back.",
    "confused": "Confused: head tilts side to side, hand scratches the head.",
    "laugh": "Laugh: head back, shoulders shake.",
    "bow": "Bow: a polite bow, for thanks.",
    "point": "Point: the arm points forward, e.g. at a citation or link.",
    "shrug": "Shrug: shoulders up, palms out, when the knowledge base has no answer.",
    "celebrate": "Celebrate: jumps with both arms up.",
    "goodbye": "Goodbye: a slow wave with a nod.",
    "wave": "Wave: the arm waves, on its own.",
    "blink": "Blink: a short eye blink, played now and then on top of the others.",
}
assert set(DESCRIPTIONS) == set(BEHAVIOURS)

INTENT_BEHAVIOUR = {
    "greeting": "greet",
    "goodbye": "goodbye",
    "thanks": "bow",
    "complaint": "sad",
    "asks_for_human": "nod",
    "about_bot": "greet",
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


# --- behaviour -> clip -----------------------------------------------------------------------

# Words found in clip names of common packs (Mixamo, Quaternius, ReadyPlayerMe, VRoid exports),
# best first. A clip name is split into lowercase words ("ThumbsUp" -> "thumbs", "up").
KEYWORDS: dict[str, tuple[str, ...]] = {
    "idle": ("idle", "breathing", "breathe", "stand", "standing", "rest", "neutral"),
    "talk": ("talk", "talking", "speak", "speaking", "chat", "conversation", "explain", "explaining"),
    "listen": ("listen", "listening", "attentive"),
    "think": ("think", "thinking", "ponder", "pondering", "thoughtful"),
    "greet": ("greet", "greeting", "hello", "hi", "wave", "waving"),
    "nod": ("yes", "nod", "nodding", "agree", "agreeing", "headnod"),
    "shake_head": ("no", "shake", "headshake", "disagree", "disagreeing"),
    "thumbs_up": ("thumbsup", "thumbs", "thumb", "like", "approve", "ok"),
    "happy": ("happy", "joy", "joyful", "smile", "cheer", "cheering", "excited"),
    "sad": ("sad", "cry", "crying", "sorry", "upset", "depressed", "defeated"),
    "surprised": ("surprised", "surprise", "shock", "shocked", "startled", "scared"),
    "confused": ("confused", "confusion", "puzzled", "scratch", "headscratch"),
    "laugh": ("laugh", "laughing", "giggle", "chuckle"),
    "bow": ("bow", "bowing", "thankful"),
    "point": ("point", "pointing", "indicate"),
    "shrug": ("shrug", "shrugging", "dunno"),
    "celebrate": ("celebrate", "celebrating", "celebration", "victory", "dance", "dancing", "jump",
                  "jumping", "win"),
    "goodbye": ("goodbye", "bye", "farewell", "wave", "waving"),
    "wave": ("wave", "waving", "hello", "hi", "greet"),
    "blink": ("blink", "blinking"),
}
assert set(KEYWORDS) == set(BEHAVIOURS)

# When a model has no clip for a behaviour, the next one that fits, then idle.
FALLBACKS: dict[str, tuple[str, ...]] = {
    "idle": (),
    "talk": ("idle",),
    "listen": ("idle",),
    "think": ("listen", "idle"),
    "greet": ("wave", "happy", "nod"),
    "nod": ("thumbs_up", "idle"),
    "shake_head": ("sad", "idle"),
    "thumbs_up": ("nod", "happy"),
    "happy": ("celebrate", "laugh", "nod"),
    "sad": ("shake_head", "idle"),
    "surprised": ("happy", "idle"),
    "confused": ("shrug", "think", "idle"),
    "laugh": ("happy", "celebrate"),
    "bow": ("nod", "thumbs_up"),
    "point": ("talk", "idle"),
    "shrug": ("confused", "shake_head", "idle"),
    "celebrate": ("happy", "laugh"),
    "goodbye": ("wave", "greet", "bow"),
    "wave": ("greet", "goodbye"),
    "blink": (),
}
assert set(FALLBACKS) == set(BEHAVIOURS)

# Names that say nothing about the motion: a Mixamo export's "Armature|mixamo.com|Layer0".
_NOISE = {"armature", "mixamo", "mixamocom", "com", "layer", "layer0", "action", "anim", "animation",
          "take", "clip", "root", "scene", "baselayer", "characterarmature", "rig", "metarig"}


def clip_words(name: str) -> list[str]:
    """'Armature|mixamo.com|Layer0' -> [...]; 'ThumbsUp' -> ['thumbs', 'up', 'thumbsup']."""
    words: list[str] = []
    for part in re.split(r"[|/:.\s_\-]+", name):
        pieces = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", part)
        lowered = [p.lower() for p in pieces if not p.isdigit()]
        words.extend(lowered)
        if len(lowered) > 1:
            words.append("".join(lowered))
    return [w for w in words if w not in _NOISE]


def _score(behaviour: str, clip: str) -> int:
    """Higher is a better match; 0 is none."""
    normal = re.sub(r"[^a-z]", "", clip.lower())
    if normal == behaviour.replace("_", ""):
        return 1000
    words = clip_words(clip)
    best = 0
    for rank, keyword in enumerate(KEYWORDS[behaviour]):
        if keyword in words:
            # earlier keywords and shorter names ("Wave" over "Wave_Walking") win
            best = max(best, 500 - rank * 10 - len(words))
    return best


def guess_animation_map(clips: list[str]) -> dict[str, str]:
    """A first animation map from clip names: every behaviour gets the best-named clip, else a
    fallback behaviour's clip, else the idle clip. Empty when the model has no clips."""
    clips = list(dict.fromkeys(clips))
    if not clips:
        return {}
    direct: dict[str, str] = {}
    for behaviour in BEHAVIOURS:
        scored = [(_score(behaviour, clip), -i, clip) for i, clip in enumerate(clips)]
        score, _, clip = max(scored)
        if score > 0:
            direct[behaviour] = clip
    if "idle" not in direct:
        # a lone unnamed take (a Mixamo export) is most likely what the character does at rest
        unclaimed = [c for c in clips if c not in direct.values()]
        direct["idle"] = (unclaimed or clips)[0]
    return {b: clip for b in BEHAVIOURS if (clip := resolve_clip(b, direct))}


def resolve_clip(behaviour: str, animation_map: dict[str, str]) -> str | None:
    """The clip a model plays for ``behaviour``: its own, a fallback's, or idle's (blink has
    no stand-in: it plays on top of the others, and replaying idle would jolt the model)."""
    last = () if behaviour == "blink" else ("idle",)
    for candidate in (behaviour, *FALLBACKS.get(behaviour, ()), *last):
        clip = animation_map.get(candidate)
        if clip:
            return clip
    return None
