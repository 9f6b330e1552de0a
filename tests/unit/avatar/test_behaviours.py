import pytest

from services.avatar.behaviours import (BEHAVIOURS, DESCRIPTIONS, choose_behaviour, clip_words,
                                        guess_animation_map, resolve_clip)
from services.avatar.views import parse_range

QUATERNIUS = ["Death", "Duck", "HitReact", "Idle", "Idle_Attack", "Jump", "Jump_Idle", "No", "Punch", "Run",
              "Walk", "Wave", "Yes", "ThumbsUp", "Dance"]


def test_one_list_of_behaviours_with_a_description_each():
    assert set(DESCRIPTIONS) == set(BEHAVIOURS)
    assert {"idle", "talk", "listen", "think", "greet", "nod", "shake_head", "thumbs_up", "happy", "sad",
            "surprised", "confused", "laugh", "bow", "point", "shrug", "celebrate", "goodbye"} <= set(BEHAVIOURS)


def test_clip_names_split_into_words():
    assert clip_words("ThumbsUp") == ["thumbs", "up", "thumbsup"]
    assert clip_words("Armature|mixamo.com|Layer0") == []
    assert "wave" in clip_words("CharacterArmature|Wave")


def test_guesses_for_a_quaternius_style_pack():
    guessed = guess_animation_map(QUATERNIUS)
    assert guessed["idle"] == "Idle"
    assert guessed["greet"] == guessed["wave"] == guessed["goodbye"] == "Wave"
    assert guessed["nod"] == "Yes" and guessed["shake_head"] == "No"
    assert guessed["thumbs_up"] == "ThumbsUp"
    assert guessed["celebrate"] == "Dance"
    assert "Death" not in guessed.values() and "Punch" not in guessed.values()
    assert set(guessed) == set(BEHAVIOURS) - {"blink"}  # no blink clip: no stand-in for it


def test_a_lone_mixamo_take_plays_for_everything():
    guessed = guess_animation_map(["Armature|mixamo.com|Layer0"])
    assert set(guessed.values()) == {"Armature|mixamo.com|Layer0"}


def test_mixamo_style_names():
    guessed = guess_animation_map(["Talking", "Breathing Idle", "Waving", "Head Nod Yes", "Thinking",
                                   "Shrugging", "Bowing", "Laughing"])
    assert guessed["talk"] == "Talking" and guessed["idle"] == "Breathing Idle"
    assert guessed["greet"] == "Waving" and guessed["nod"] == "Head Nod Yes"
    assert guessed["think"] == "Thinking" and guessed["shrug"] == "Shrugging"
    assert guessed["bow"] == "Bowing" and guessed["laugh"] == "Laughing"
    assert guessed["happy"] == "Laughing"  # a fallback: laugh is the nearest thing to happy here


def test_exact_names_win_and_no_clips_means_no_map():
    assert guess_animation_map(list(BEHAVIOURS)) == {b: b for b in BEHAVIOURS}
    assert guess_animation_map([]) == {}


def test_resolving_falls_back_to_related_behaviours_then_idle():
    assert resolve_clip("greet", {"wave": "W", "idle": "I"}) == "W"
    assert resolve_clip("celebrate", {"idle": "I"}) == "I"
    assert resolve_clip("blink", {"idle": "I"}) is None
    assert resolve_clip("talk", {}) is None


@pytest.mark.parametrize("intent,sentiment,answered,behaviour", [
    ("greeting", 0.0, True, "greet"), ("goodbye", -0.9, True, "goodbye"), ("thanks", 0.8, True, "bow"),
    ("complaint", 0.3, True, "sad"), ("asks_for_human", 0.0, True, "nod"), ("question", 0.1, False, "shrug"),
    ("other", 0.7, True, "happy"), ("question", -0.6, True, "sad"), ("question", 0.1, True, "nod"),
])
def test_intent_then_knowledge_then_sentiment_choose_the_behaviour(intent, sentiment, answered, behaviour):
    assert choose_behaviour(intent, sentiment, answered=answered) == behaviour
    assert behaviour in BEHAVIOURS


@pytest.mark.parametrize("header,expected", [
    ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 999)), ("bytes=-10", (990, 999)),
    ("bytes=990-5000", (990, 999)), ("bytes=1000-", False), ("bytes=-0", False),
    ("bytes=5-1", None), ("bytes=0-1,5-6", None), ("items=0-1", None), ("", None),
])
def test_range_headers(header, expected):
    assert parse_range(header, 1000) == expected
