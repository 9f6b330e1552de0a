"""Reply text -> a lip-sync track of the 15 Oculus visemes, offline, as the text streams.

    sil PP FF TH DD kk CH SS nn RR aa E I O U

Letter-to-sound rules (English spelling first: digraphs, a silent final e, a few hundred
common irregular words would be better, a handful are listed) map each word to visemes;
letters of other scripts go through their Unicode names (``CYRILLIC SMALL LETTER EF`` -> f),
and ideographs become one plausible syllable each, so any language gets a track. Each viseme
has a duration, and the whole is paced at a natural speaking rate (about 160 words a minute),
with pauses at commas and sentence ends. docs/avatar.md says why rules and not a G2P library.

A track is a list of ``[viseme, offset, duration_ms]``: ``offset`` is where, in the reply's
text, the word the viseme belongs to starts, so the widget lines the mouth up with the text.
"""
from __future__ import annotations

import re
import unicodedata
import zlib

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
VOWELS = {"aa", "E", "I", "O", "U"}

# milliseconds; tuned so ordinary English text comes out near 160 words a minute
VOWEL_MS = 100
CONSONANT_MS = 58
WORD_GAP_MS = 35
PAUSE_MS = {",": 180, ";": 220, ":": 220, ".": 360, "!": 360, "?": 360, "\n": 360}

_CONSONANTS = {
    "b": "PP", "p": "PP", "m": "PP", "f": "FF", "v": "FF", "w": "U", "t": "DD", "d": "DD", "k": "kk", "g": "kk",
    "q": "kk", "c": "kk", "s": "SS", "z": "SS", "j": "CH", "l": "nn", "n": "nn", "r": "RR", "y": "I",
}
_SINGLE_VOWELS = {"a": "aa", "e": "E", "i": "I", "o": "O", "u": "U"}
# longest first; "" means silent
_ENGLISH = [
    ("tch", ["CH"]), ("sch", ["SS", "kk"]), ("igh", ["aa", "I"]), ("ough", ["O"]), ("augh", ["O"]),
    ("th", ["TH"]), ("sh", ["CH"]), ("ch", ["CH"]), ("ph", ["FF"]), ("gh", []), ("ng", ["nn", "kk"]),
    ("ck", ["kk"]), ("qu", ["kk", "U"]), ("wh", ["U"]), ("wr", ["RR"]), ("kn", ["nn"]), ("x", ["kk", "SS"]),
    ("ee", ["I"]), ("ea", ["I"]), ("ie", ["I"]), ("ei", ["E", "I"]), ("ey", ["E", "I"]), ("oo", ["U"]),
    ("ou", ["aa", "U"]), ("ow", ["O", "U"]), ("oi", ["O", "I"]), ("oy", ["O", "I"]), ("ai", ["E", "I"]),
    ("ay", ["E", "I"]), ("au", ["O"]), ("aw", ["O"]), ("oa", ["O"]), ("ue", ["U"]), ("ew", ["U"]),
    ("er", ["E", "RR"]), ("ar", ["aa", "RR"]), ("or", ["O", "RR"]),
    ("ce", ["SS", "E"]), ("ci", ["SS", "I"]), ("cy", ["SS", "I"]), ("ge", ["CH", "E"]),
]
_GENERIC = [("ch", ["CH"]), ("sh", ["CH"]), ("sch", ["CH"]), ("th", ["TH"]), ("ph", ["FF"]), ("x", ["kk", "SS"]),
            ("qu", ["kk"]), ("ng", ["nn", "kk"]), ("ll", ["nn"]), ("rr", ["RR"])]
_WORDS = {
    "i": ["aa", "I"], "a": ["aa"], "the": ["TH", "E"], "you": ["I", "U"], "your": ["I", "O", "RR"],
    "one": ["U", "aa", "nn"], "are": ["aa", "RR"], "what": ["U", "aa", "DD"], "who": ["U"], "to": ["DD", "U"],
    "do": ["DD", "U"], "does": ["DD", "aa", "SS"], "said": ["SS", "E", "DD"], "says": ["SS", "E", "SS"],
    "have": ["aa", "FF"], "give": ["kk", "I", "FF"], "live": ["nn", "I", "FF"], "were": ["U", "E", "RR"],
    "there": ["TH", "E", "RR"], "where": ["U", "E", "RR"], "come": ["kk", "aa", "PP"], "some": ["SS", "aa", "PP"],
    "done": ["DD", "aa", "nn"], "gone": ["kk", "O", "nn"], "eye": ["aa", "I"], "hour": ["aa", "U", "RR"],
    "we": ["U", "I"], "be": ["PP", "I"], "he": ["I"], "she": ["CH", "I"], "me": ["PP", "I"], "hello": ["E", "nn", "O", "U"],
    "hi": ["aa", "I"], "my": ["PP", "aa", "I"], "by": ["PP", "aa", "I"], "why": ["U", "aa", "I"],
}
_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[,;:.!?\n]")


_SYLLABIC = {"HIRAGANA", "KATAKANA", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "TAMIL", "TELUGU",
             "KANNADA", "MALAYALAM", "ETHIOPIC", "CHEROKEE", "YI"}


def _latin(letter: str) -> str:
    """A letter's Latin reading: é -> e, ß -> ss; other scripts through their Unicode names
    (``CYRILLIC SMALL LETTER EF`` -> f, ``HIRAGANA LETTER KO`` -> ko, Hangul by its jamo);
    '' for what has none."""
    parts = unicodedata.normalize("NFKD", letter)
    base = parts[0].lower()
    if "a" <= base <= "z":
        return base
    if base == "ß":
        return "ss"
    out = ""
    for ch in parts:
        if unicodedata.combining(ch):
            continue
        name = unicodedata.name(ch, "")
        word = name.split(" ")[-1].lower() if name else ""
        if not word.isascii() or not word.isalpha():
            continue
        if name.split(" ")[0] in _SYLLABIC:
            out += word  # a syllable: KA, NI
        elif re.fullmatch(r"[ae][^aeiouy]{1,2}", word):
            out += word[1:]  # Cyrillic-style names: EF -> f, ER -> r, EL -> l
        elif word[0] in "aeiou":
            out += word[0] if not name.startswith("HANGUL JUNGSEONG") else word
        else:  # a consonant is its name's start: EF -> f, BEH -> b, SHIN -> sh, KIYEOK -> k
            m = re.match(r"[^aeiouy]+", word)
            out += m.group(0)[:2] if m else word[:1]
    return out


def _syllable(char: str) -> list[str]:
    """An ideograph or a syllable we cannot read: one plausible consonant and vowel."""
    h = zlib.crc32(char.encode())
    consonants = ["PP", "DD", "kk", "SS", "nn", "CH", "RR", "FF"]
    vowels = ["aa", "E", "I", "O", "U"]
    return [consonants[h % len(consonants)], vowels[(h >> 8) % len(vowels)]]


def _spell(letters: str, rules: list[tuple[str, list[str]]], *, english: bool) -> list[str]:
    out: list[str] = []
    i = 0
    if english and len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiouyl":
        letters = letters[:-1]  # a silent final e: make, hope, time
    while i < len(letters):
        for graph, visemes in rules:
            if letters.startswith(graph, i):
                out += visemes
                i += len(graph)
                break
        else:
            ch = letters[i]
            if ch == "h":
                pass  # breath: the mouth keeps the shape around it
            elif ch in _SINGLE_VOWELS:
                out.append(_SINGLE_VOWELS[ch])
            elif ch == "y":
                out.append("I")
            elif ch in _CONSONANTS:
                out.append(_CONSONANTS[ch])
            i += 1
    # a doubled letter is one sound
    return [v for n, v in enumerate(out) if n == 0 or v != out[n - 1] or v in VOWELS]


def word_visemes(word: str) -> list[str]:
    """The visemes of one word, in any script."""
    lower = word.lower().replace("’", "'")
    if lower in _WORDS:
        return list(_WORDS[lower])
    if lower.isdigit():
        return [v for d in lower for v in word_visemes(_DIGITS[int(d)])]
    if lower.isascii():
        english = True
        letters = lower.replace("'", "")
    else:
        english = False
        parts = []
        for ch in lower:
            if ch.isdigit() and ch.isascii():
                parts.append(_DIGITS[int(ch)])
                continue
            latin = _latin(ch)
            parts.append(latin if latin else f"\x00{ch}")
        letters = "".join(parts)
    out: list[str] = []
    for piece in re.split(r"(\x00.)", letters):
        if piece.startswith("\x00"):
            out += _syllable(piece[1])
        elif piece:
            out += _spell(piece, _ENGLISH if english else _GENERIC, english=english)
    return out or ["aa"]


def track(text: str, offset: int = 0) -> list[list]:
    """``[[viseme, offset, duration_ms], ...]`` for ``text``, which starts at ``offset`` in the
    reply."""
    out: list[list] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        at = offset + match.start()
        if token in PAUSE_MS:
            if out and out[-1][0] == "sil":
                out[-1][2] = max(out[-1][2], PAUSE_MS[token])
            else:
                out.append(["sil", at, PAUSE_MS[token]])
            continue
        for viseme in word_visemes(token):
            out.append([viseme, at, VOWEL_MS if viseme in VOWELS else CONSONANT_MS])
        out.append(["sil", at, WORD_GAP_MS])
    return out


class TrackBuilder:
    """Visemes for a reply whose text arrives in chunks. A word cut by a chunk boundary waits
    for its end, so it is read whole; ``flush`` gives what is left when the reply ends."""

    def __init__(self) -> None:
        self.next_offset = 0
        self.pending = ""
        self.pending_offset = 0

    def feed(self, offset: int, text: str) -> list[list]:
        if offset < self.next_offset:  # a repeat: only what is new
            text = text[self.next_offset - offset:]
            offset = self.next_offset
        elif offset > self.next_offset:  # a gap: start afresh where the text is
            self.pending, self.pending_offset = "", offset
        if not self.pending:
            self.pending_offset = offset
        self.pending += text
        self.next_offset = offset + len(text)
        cut = len(self.pending)
        while cut > 0 and (self.pending[cut - 1].isalnum() or self.pending[cut - 1] in "'’"):
            cut -= 1
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        start = self.pending_offset
        self.pending_offset += cut
        return track(ready, start) if ready else []

    def flush(self) -> list[list]:
        ready, self.pending = self.pending, ""
        start, self.pending_offset = self.pending_offset, self.next_offset
        return track(ready, start) if ready else []


def duration_ms(visemes: list[list]) -> int:
    return sum(v[2] for v in visemes)
