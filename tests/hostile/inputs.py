"""Hostile inputs, generated when a test runs (nothing big is committed): each is small on the
wire and built to be expensive for whoever parses it."""
from __future__ import annotations

import io
import zlib
import zipfile

_MIB = 1024 ** 2


def gzip_bomb(expanded: int = 256 * _MIB, filler: bytes = b"\0") -> bytes:
    """About ``expanded / 1000`` bytes of gzip that inflate to ``expanded`` bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = (filler * (_MIB // len(filler) + 1))[:_MIB]
    parts = [compressor.compress(block) for _ in range(expanded // _MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


_CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.'
                  b'org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
                  b'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override '
                  b'PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                  b'wordprocessingml.document.main+xml"/></Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.'
         b'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
         b'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>')


def docx(paragraph: bytes, count: int, *, padding: int = 0) -> bytes:
    """A Word document: ``count`` copies of ``paragraph`` XML in its body, and optionally a
    part of ``padding`` zero bytes (a zip bomb: it compresses a thousandfold)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
            block = paragraph * 10_000
            for _ in range(count // 10_000):
                part.write(block)
            part.write(paragraph * (count % 10_000))
            part.write(b"</w:body></w:document>")
        if padding:
            with archive.open("word/media/padding.bin", "w", force_zip64=True) as part:
                zeros = b"\0" * _MIB
                for _ in range(padding // _MIB):
                    part.write(zeros)
    return buffer.getvalue()


def zip_bomb_docx(expanded: int = 300 * _MIB) -> bytes:
    return docx(b"<w:p><w:r><w:t>Hello</w:t></w:r></w:p>", 1, padding=expanded)


def dense_docx(paragraphs: int = 1_600_000) -> bytes:
    """60 MB of paragraphs in 160 KB: under the zip size limits, heavy to parse."""
    return docx(b"<w:p><w:r><w:t>a</w:t></w:r></w:p>", paragraphs)


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF with a correct cross-reference table; object 1 is the catalog."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


_PAGE_CONTENT = b"<< /Length 44 >>\nstream\nBT /F1 12 Tf 72 712 Td (Page text) Tj ET\nendstream"
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf_with_pages(count: int = 100_000) -> bytes:
    """One page object listed ``count`` times: a huge page count in a few hundred KB."""
    kids = b" ".join([b"3 0 R"] * count)
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                 b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
                 b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                 b"/Resources << /Font << /F1 5 0 R >> >> >>",
                 _PAGE_CONTENT, _FONT])


def pdf_with_deep_page_tree(depth: int = 50_000) -> bytes:
    """Page-tree nodes nested ``depth`` deep above one page: a walk that recurses overflows."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        number = level + 2
        objects.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (number + 1))
    page = len(objects) + 1
    objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                   b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (page - 1, page + 1, page + 2))
    objects += [_PAGE_CONTENT, _FONT]
    return _pdf(objects)


def split_http_request(path: str, body: bytes, host: str, extra: str = "") -> tuple[bytes, bytes]:
    """A request as two TCP writes: the head with half the body, then the rest."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode()
    half = len(body) // 2
    return head + body[:half], body[half:]
