import pytest

from services.knowledge.extract import ExtractionError, detect_kind, extract, prepare
from tests.integration.knowledge.samples import make_docx, make_encrypted_pdf, make_html, make_pdf


def test_kind_comes_from_magic_bytes_then_name_then_type():
    assert detect_kind(b"%PDF-1.4 ...", "text/plain", "x.txt") == "pdf"
    assert detect_kind(b"# hi", None, "readme.md") == "markdown"
    assert detect_kind(b"<!DOCTYPE html><html>", None, None) == "html"
    assert detect_kind(b"hello", "text/plain; charset=utf-8", None) == "text"
    with pytest.raises(ExtractionError, match="unsupported"):
        detect_kind(b"\x89PNG", "image/png", "a.png")


def test_pdf_pages_become_sections():
    out = extract(make_pdf(["First page text.", "Second page text."]))
    assert out.kind == "pdf" and "## Page 2\n\nSecond page text." in out.text


def test_encrypted_corrupt_and_empty_pdfs_fail_clearly():
    with pytest.raises(ExtractionError, match="encrypted"):
        extract(make_encrypted_pdf(["secret"]))
    with pytest.raises(ExtractionError, match="PDF"):
        extract(b"%PDF-1.4\n" + b"\x00garbage" * 100)
    with pytest.raises(ExtractionError, match="PDF"):
        extract(make_pdf(["x"])[:120])
    with pytest.raises(ExtractionError, match="not one"):
        extract(b"hello", filename="x.pdf")


def test_docx_headings_and_paragraphs():
    out = extract(make_docx("Handbook", [("Holidays", ["Twenty days."])]))
    assert out.title == "Handbook"
    assert "# Handbook" in out.text and "## Holidays" in out.text and "Twenty days." in out.text
    with pytest.raises(ExtractionError, match="DOCX"):
        extract(b"PK\x03\x04not really a zip", filename="a.docx")


def test_html_keeps_the_main_text_not_the_navigation():
    out = extract(make_html("Shears", "<p>The shears cut branches up to 25 mm thick.</p>").encode(),
                  content_type="text/html")
    assert out.title == "Shears" and "25 mm" in out.text
    assert "Login" not in out.text and "Copyright" not in out.text


def test_binary_sent_as_text_fails():
    with pytest.raises(ExtractionError, match="binary"):
        extract(b"\x00\x01\x02binary", content_type="text/plain", filename="a.txt")
    with pytest.raises(ExtractionError, match="binary"):
        extract(bytes(range(1, 32)) * 50, content_type="text/plain")
    with pytest.raises(ExtractionError, match="empty"):
        extract(b"")


def test_latin1_text_is_decoded_and_prepare_hashes_normalised_text():
    assert "café" in extract("café au lait".encode("latin-1"), content_type="text/plain").text
    a = prepare(b"Same   text\n", content_type="text/plain", filename=None, url=None, chunk_size=100, chunk_overlap=10)
    b = prepare(b"Same text", content_type="text/plain", filename=None, url=None, chunk_size=100, chunk_overlap=10)
    assert a["content_sha256"] == b["content_sha256"] and a["chunks"][0][0].startswith("Same")
