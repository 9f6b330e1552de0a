"""Turn uploaded or fetched bytes into Markdown-like text (headings kept) and a title.

Pure and synchronous: the service runs it in a worker process, so a huge or hostile file
costs a worker, never the event loop. Every way a file can be unusable raises
``ExtractionError`` with a reason a tenant can act on.
"""
from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
KINDS = ("text", "markdown", "html", "pdf", "docx")
_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
               ".htm": "html", ".html": "html", ".xhtml": "html", ".pdf": "pdf", ".docx": "docx"}
_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
          "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
          DOCX_TYPE: "docx"}
MAX_PDF_PAGES = 2000
# A DOCX is a zip: python-docx reads every part whole. Sizes come from the zip's directory,
# which zipfile enforces while reading (a part that expands past its declared size fails
# its CRC), so checking them first bounds what parsing can allocate.
MAX_DOCX_EXPANDED_BYTES = 256 * 1024 ** 2
MAX_DOCX_PART_BYTES = 64 * 1024 ** 2
MAX_DOCX_PARTS = 5000


class ExtractionError(Exception):
    """The document cannot be used; ``str(exc)`` is the reason shown to the tenant."""


@dataclass
class Extracted:
    kind: str
    title: str | None
    text: str


def detect_kind(raw: bytes, content_type: str | None, filename: str | None) -> str:
    """Magic bytes first (a PDF named .txt is still a PDF), then the name, then the type."""
    head = raw[:1024].lstrip()
    if raw.startswith(b"%PDF-"):
        return "pdf"
    if raw.startswith(b"PK\x03\x04"):
        return "docx"
    ext = PurePosixPath(filename or "").suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    base_type = (content_type or "").split(";")[0].strip().lower()
    if base_type in _TYPES:
        return _TYPES[base_type]
    lowered = head[:200].lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<body" in head.lower():
        return "html"
    if base_type and not base_type.startswith("text/") and base_type != "application/octet-stream":
        raise ExtractionError(f"unsupported content type {base_type!r}: send text, Markdown, HTML, PDF or DOCX")
    return "text"


def decode_text(raw: bytes, charset: str | None = None) -> str:
    """Text bytes as str; binary data sent as text is refused rather than indexed as noise."""
    sample = raw[:65536]
    if b"\x00" in sample:
        raise ExtractionError("the file looks binary (it contains NUL bytes), not text")
    for encoding in filter(None, [charset, "utf-8-sig"]):
        try:
            text = raw.decode(encoding)
            break
        except (UnicodeDecodeError, LookupError):
            continue
    else:
        text = raw.decode("cp1252", errors="replace")
    control = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if text and (control / min(len(text), 65536) > 0.02 or text[:65536].count("\ufffd") > 0.05 * min(len(text), 65536)):
        raise ExtractionError("the file looks binary (too many control characters), not text")
    return text


def _charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=([\w.-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
        if line:
            return line[:120]
    return None


def extract_html(html: str, url: str | None = None) -> Extracted:
    """The page's main text as Markdown, without navigation, footers or cookie banners."""
    import trafilatura

    title = None
    try:
        meta = trafilatura.extract_metadata(html, default_url=url)
        title = meta.title if meta else None
    except Exception:  # noqa: BLE001 - the title is a nicety
        pass
    # precision first: it drops menus and footers that recall mode keeps on short pages
    text = None
    for mode in ({"favor_precision": True}, {"favor_recall": True}):
        text = trafilatura.extract(html, url=url, output_format="markdown", include_comments=False,
                                   include_tables=True, include_links=False, include_images=False,
                                   with_metadata=False, **mode)
        if text and text.strip():
            break
    if not text:
        # trafilatura keeps nothing from very short pages; fall back to all visible text
        from lxml import html as lxml_html

        try:
            tree = lxml_html.fromstring(html)
            for bad in tree.xpath("//script|//style|//nav|//footer|//header|//noscript"):
                bad.drop_tree()
            text = re.sub(r"\n\s*\n+", "\n\n", tree.text_content()).strip()
            title = title or (tree.findtext(".//title") or "").strip() or None
        except Exception:  # noqa: BLE001 - empty or broken markup
            text = ""
    if not text.strip():
        raise ExtractionError("the page has no readable text")
    return Extracted("html", title, text)


def extract_pdf(raw: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            # many PDFs are "encrypted" with an empty user password and open fine
            try:
                if not reader.decrypt(""):
                    raise ExtractionError("the PDF is encrypted with a password; upload an unprotected copy")
            except ExtractionError:
                raise
            except Exception:
                raise ExtractionError("the PDF is encrypted; upload an unprotected copy") from None
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise ExtractionError(f"the PDF has more than {MAX_PDF_PAGES} pages")
        parts = []
        for number, page in enumerate(pages, start=1):
            page_text = (page.extract_text() or "").strip()
            if page_text:
                parts.append(f"## Page {number}\n\n{page_text}")
        title = None
        try:
            title = (reader.metadata.title or None) if reader.metadata else None
        except Exception:  # noqa: BLE001 - broken metadata only loses the title
            pass
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, AssertionError, zipfile.BadZipFile, OSError) as exc:
        raise ExtractionError(f"the PDF is corrupt or unreadable ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001 - pypdf raises many things on hostile input
        raise ExtractionError(f"the PDF could not be read ({type(exc).__name__})") from None
    text = "\n\n".join(parts)
    if not text.strip():
        raise ExtractionError("the PDF has no extractable text (is it a scan? OCR it first)")
    return Extracted("pdf", title, text)


def check_zip_sizes(raw: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ExtractionError(f"the DOCX file is corrupt or not a Word document ({type(exc).__name__})") from None
    if len(parts) > MAX_DOCX_PARTS:
        raise ExtractionError(f"the DOCX file has more than {MAX_DOCX_PARTS} parts")
    expanded = sum(part.file_size for part in parts)
    biggest = max((part.file_size for part in parts), default=0)
    if expanded > MAX_DOCX_EXPANDED_BYTES or biggest > MAX_DOCX_PART_BYTES:
        raise ExtractionError(f"the DOCX file expands to {expanded // 2 ** 20} MB when unzipped; the limit is "
                              f"{MAX_DOCX_EXPANDED_BYTES // 2 ** 20} MB ({MAX_DOCX_PART_BYTES // 2 ** 20} MB per part)")


def extract_docx(raw: bytes) -> Extracted:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    check_zip_sizes(raw)
    try:
        document = docx.Document(io.BytesIO(raw))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractionError(f"the DOCX file is corrupt or not a Word document ({type(exc).__name__})") from None
    except Exception as exc:  # noqa: BLE001
        raise ExtractionError(f"the DOCX file could not be read ({type(exc).__name__})") from None
    lines: list[str] = []
    title = (document.core_properties.title or "").strip() or None
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            title = title or text
            lines.append(f"# {text}")
        elif match:
            lines.append(f"{'#' * min(int(match.group(1)) + 1, 6)} {text}")
        else:
            lines.append(text)
        lines.append("")
    for table in document.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells]
            if any(cells):
                lines.append(" | ".join(cells))
        lines.append("")
    text = "\n".join(lines).strip()
    if not text:
        raise ExtractionError("the DOCX document is empty")
    return Extracted("docx", title, text)


def extract(raw: bytes, *, content_type: str | None = None, filename: str | None = None,
            url: str | None = None) -> Extracted:
    if not raw:
        raise ExtractionError("the document is empty")
    kind = detect_kind(raw, content_type, filename)
    if kind == "pdf":
        if not raw.startswith(b"%PDF-"):
            raise ExtractionError("the file is named like a PDF but is not one")
        return extract_pdf(raw)
    if kind == "docx":
        if not raw.startswith(b"PK\x03\x04"):
            raise ExtractionError("the file is named like a DOCX document but is not one")
        return extract_docx(raw)
    text = decode_text(raw, _charset(content_type))
    if kind == "html":
        return extract_html(text, url)
    if not text.strip():
        raise ExtractionError("the document is empty")
    return Extracted(kind, _first_heading(text) if kind == "markdown" else None, text)


def prepare(raw: bytes, *, content_type: str | None, filename: str | None, url: str | None,
            chunk_size: int, chunk_overlap: int) -> dict:
    """Extract and chunk in one call, so the worker process returns only plain data."""
    import hashlib

    from services.knowledge.chunking import chunk_text

    extracted = extract(raw, content_type=content_type, filename=filename, url=url)
    normalised = re.sub(r"\s+", " ", extracted.text).strip()
    chunks = chunk_text(extracted.text, chunk_size, chunk_overlap)
    if not chunks:
        raise ExtractionError("the document has no text to index")
    return {"kind": extracted.kind, "title": extracted.title,
            "content_sha256": hashlib.sha256(normalised.encode()).hexdigest(),
            "chunks": [(c.text, c.heading_path, c.position, c.tokens) for c in chunks]}
