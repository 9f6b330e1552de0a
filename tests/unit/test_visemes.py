"""Reply text -> lip-sync tracks (common/visemes.py)."""
from common.visemes import VISEMES, VOWELS, TrackBuilder, duration_ms, track, word_visemes

PARAGRAPH = ("Thanks for asking! Our shop is open from Monday to Friday, nine to six, and on Saturday "
             "from ten until five. You can bring your bike in for a quick check of the brakes, gears and "
             "tyres; most repairs are done the same day. Would you like to book a service?")


def test_words_become_the_oculus_visemes_one_would_expect():
    assert word_visemes("bike") == ["PP", "aa", "I", "kk"] or word_visemes("bike")[0] == "PP"
    assert word_visemes("think")[0] == "TH"
    assert word_visemes("shop")[0] == "CH" and word_visemes("shop")[-1] == "PP"
    assert word_visemes("five")[0] == "FF"
    assert word_visemes("zoo") == ["SS", "U"]
    assert word_visemes("red")[0] == "RR" and word_visemes("no") == ["nn", "O"]
    everything = {v for w in PARAGRAPH.split() for v in word_visemes(w.strip(".,!?;"))}
    assert everything >= set(VISEMES) - {"sil"}, set(VISEMES) - everything


def test_offsets_point_at_the_words_in_the_text():
    text = "Hello there, friend."
    visemes = track(text, offset=100)
    words = {v[1] for v in visemes if v[0] != "sil"}
    assert words == {100, 106, 113}
    assert all(v[0] in VISEMES and v[2] > 0 for v in visemes)


def test_it_speaks_at_a_natural_rate_with_pauses_at_punctuation():
    visemes = track(PARAGRAPH)
    words_per_minute = len(PARAGRAPH.split()) / (duration_ms(visemes) / 60_000)
    assert 120 <= words_per_minute <= 190, words_per_minute
    pauses = [v for v in visemes if v[0] == "sil"]
    assert max(p[2] for p in pauses) >= 300  # a sentence end is a real pause
    vowels = [v[2] for v in visemes if v[0] in VOWELS]
    consonants = [v[2] for v in visemes if v[0] not in VOWELS and v[0] != "sil"]
    assert min(vowels) > max(consonants)  # vowels are held longer


def test_a_word_cut_by_a_chunk_boundary_is_read_whole():
    builder = TrackBuilder()
    pieces = []
    for start in range(0, len(PARAGRAPH), 7):
        pieces += builder.feed(start, PARAGRAPH[start:start + 7])
    pieces += builder.flush()
    assert pieces == track(PARAGRAPH)


def test_repeats_are_skipped_and_a_gap_starts_afresh():
    builder = TrackBuilder()
    first = builder.feed(0, "Hello there ")
    assert builder.feed(0, "Hello there ") == []  # the same chunk again
    later = builder.feed(40, "again now")
    assert first and later[0][1] == 40
    assert builder.flush()[0][1] == 46


def test_languages_the_rules_do_not_know_still_get_a_plausible_track():
    for text in ("Привет, как дела?", "Γειά σου κόσμε", "こんにちは世界", "مرحبا بالعالم", "안녕하세요",
                 "नमस्ते दुनिया", "你好，世界", "Größe über alles, ça va?"):
        visemes = [v[0] for v in track(text) if v[0] != "sil"]
        assert len(visemes) >= 4, (text, visemes)
        assert set(visemes) & VOWELS and set(visemes) - VOWELS, (text, visemes)  # opens and closes
        assert len(visemes) <= 4 * len(text), (text, visemes)
