from services.knowledge.chunking import chunk_text, count_tokens

DOC = """# Guide

Intro paragraph about the product.

## Setup

First, unpack the box. Then plug it in.

Second paragraph of setup.

### Wi-Fi

Hold the button for five seconds to pair.

## Troubleshooting

If the light blinks red, restart the device.
"""


def test_headings_make_the_path_and_chunks_never_span_sections():
    chunks = chunk_text(DOC, size=200, overlap=20)
    assert [c.heading_path for c in chunks] == [
        ["Guide"], ["Guide", "Setup"], ["Guide", "Setup", "Wi-Fi"], ["Guide", "Troubleshooting"]]
    assert "unpack the box" in chunks[1].text and "Second paragraph" in chunks[1].text
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    assert all(c.tokens == count_tokens(c.text) for c in chunks)


def test_long_sections_split_on_paragraphs_with_overlap_and_respect_the_size():
    paragraphs = [f"Sentence {i} talks about topic {i}. It has a second sentence too." for i in range(40)]
    chunks = chunk_text("\n\n".join(paragraphs), size=60, overlap=15)
    assert len(chunks) > 5
    assert all(c.tokens <= 60 for c in chunks)
    for before, after in zip(chunks, chunks[1:]):
        # the last paragraph of a chunk opens the next one
        assert before.text.split("\n\n")[-1] == after.text.split("\n\n")[0]
    joined = " ".join(c.text for c in chunks)
    assert all(p in joined for p in paragraphs)


def test_a_huge_paragraph_is_split_on_sentences_then_words():
    sentence = "word " * 500
    chunks = chunk_text("Short start. " + sentence, size=100, overlap=0)
    assert len(chunks) >= 5 and all(c.tokens <= 100 for c in chunks)


def test_no_overlap_and_empty_input():
    assert chunk_text("   \n\n  ") == []
    chunks = chunk_text("\n\n".join(["alpha beta gamma delta"] * 10), size=20, overlap=0)
    assert sum(c.text.count("alpha") for c in chunks) == 10


def test_code_fences_do_not_open_headings():
    chunks = chunk_text("# Real\n\n```\n# not a heading\nprint(1)\n```\n", size=100)
    assert len(chunks) == 1 and chunks[0].heading_path == ["Real"] and "# not a heading" in chunks[0].text
