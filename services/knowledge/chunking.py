"""Structure-aware chunking of the Markdown-like text every extractor produces.

Headings (``#`` lines) open sections and make the heading path; inside a section,
paragraphs are packed into chunks of at most ``size`` tokens. A paragraph larger than a
chunk is split on sentences (then words). Consecutive chunks of one section share about
``overlap`` tokens of whole sentences, so a fact cut at a boundary is still found whole.
A chunk never spans two sections: its heading path stays true.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_FENCE = re.compile(r"^(```|~~~)")


def count_tokens(text: str) -> int:
    """Word pieces and punctuation marks: close to a BPE count for prose, and cheap."""
    return len(_TOKEN.findall(text))


@dataclass
class Chunk:
    text: str
    heading_path: list[str] = field(default_factory=list)
    position: int = 0
    tokens: int = 0


@dataclass
class _Section:
    path: list[str]
    paragraphs: list[str]


def _sections(text: str) -> list[_Section]:
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    current = _Section([], [])
    paragraph: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        if paragraph:
            body = "\n".join(paragraph).strip()
            if body:
                current.paragraphs.append(body)
            paragraph.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            paragraph.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            end_paragraph()
            if current.paragraphs:
                sections.append(current)
            level, title = len(heading.group(1)), heading.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            current = _Section([t for _, t in stack], [])
        elif not line.strip() and not in_fence:
            end_paragraph()
        else:
            paragraph.append(line)
    end_paragraph()
    if current.paragraphs:
        sections.append(current)
    return sections


def _split_long(paragraph: str, size: int) -> list[str]:
    """Pieces of at most ``size`` tokens: whole sentences where possible, else word runs."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if count_tokens(sentence) <= size:
            pieces.append(sentence)
            continue
        words = sentence.split()
        run: list[str] = []
        run_tokens = 0
        for word in words:
            t = count_tokens(word)
            if run and run_tokens + t > size:
                pieces.append(" ".join(run))
                run, run_tokens = [], 0
            run.append(word)
            run_tokens += t
        if run:
            pieces.append(" ".join(run))
    return pieces


def _tail(units: list[str], overlap: int) -> list[str]:
    """The last units of a chunk that fit in ``overlap`` tokens (whole units only)."""
    tail: list[str] = []
    tokens = 0
    for unit in reversed(units):
        t = count_tokens(unit)
        if tokens + t > overlap:
            break
        tail.insert(0, unit)
        tokens += t
    return tail


def chunk_text(text: str, size: int = 220, overlap: int = 40) -> list[Chunk]:
    if size < 20:
        raise ValueError("chunk size must be at least 20 tokens")
    overlap = max(0, min(overlap, size // 2))
    chunks: list[Chunk] = []
    for section in _sections(text):
        # units: paragraphs, or sentences of paragraphs too large for one chunk
        units: list[tuple[str, bool]] = []  # (text, starts a paragraph)
        for paragraph in section.paragraphs:
            if count_tokens(paragraph) <= size:
                units.append((paragraph, True))
            else:
                units.extend((piece, i == 0) for i, piece in enumerate(_split_long(paragraph, size)))
        current: list[str] = []
        current_tokens = 0
        fresh = 0  # units in ``current`` not carried over from the previous chunk

        def flush() -> None:
            if fresh:
                chunk = "\n\n".join(current).strip()
                chunks.append(Chunk(chunk, list(section.path), len(chunks), count_tokens(chunk)))

        for unit, _starts in units:
            t = count_tokens(unit)
            if current and current_tokens + t > size:
                flush()
                current = _tail(current, overlap) if overlap else []
                if current and count_tokens("\n\n".join(current)) + t > size:
                    current = []
                current_tokens = sum(count_tokens(u) for u in current)
                fresh = 0
            current.append(unit)
            current_tokens += t
            fresh += 1
        flush()
    return chunks
