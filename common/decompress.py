"""Decompression with a ceiling. Half a megabyte of gzip can hold a gigabyte of zeros: the
output is produced in steps and refused the moment it passes ``max_bytes``, so a bomb costs
``max_bytes`` at most, never what it claims to expand to."""
from __future__ import annotations

import zlib

GZIP_MAGIC = b"\x1f\x8b"
_STEP = 1024 ** 2


class TooLarge(ValueError):
    """The data expands past the ceiling."""


class Corrupt(ValueError):
    """The data is not valid compressed data."""


def inflate(data: bytes, max_bytes: int, *, wbits: int = zlib.MAX_WBITS | 32) -> bytes:
    """gzip (several members included) or zlib data, expanded to at most ``max_bytes``.
    ``wbits``: the default detects a gzip or zlib header; ``-15`` reads raw deflate."""
    out = bytearray()
    rest = data
    while rest:
        decoder = zlib.decompressobj(wbits)
        pending = rest
        while pending:
            try:
                out += decoder.decompress(pending, min(_STEP, max_bytes + 1 - len(out)))
            except zlib.error as exc:
                raise Corrupt(f"not valid compressed data ({exc})") from None
            if len(out) > max_bytes:
                raise TooLarge(f"it expands to more than {max_bytes} bytes")
            pending = decoder.unconsumed_tail
        if not decoder.eof:
            raise Corrupt("the compressed data is cut short")
        rest = decoder.unused_data  # the next gzip member, if any
        if rest.strip(b"\x00") == b"":
            break
    return bytes(out)


def decode_content(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """An HTTP body by its ``Content-Encoding`` (identity, gzip, deflate), bounded."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return inflate(body, max_bytes)
    if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as some servers send it
        try:
            return inflate(body, max_bytes)
        except Corrupt:
            return inflate(body, max_bytes, wbits=-zlib.MAX_WBITS)
    raise Corrupt(f"unsupported content encoding {encoding!r}")
