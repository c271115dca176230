"""Documents in, page text and page images out: every format on files the tests
generate, page numbers and text checked page by page, pages that need vision found,
renders sized for Llama 4's tiles, and every bad document refused in one line."""

from __future__ import annotations

import hashlib
import io
import math
import subprocess
import sys
import threading
import zipfile

import pytest

from documents.reader import (
    DOCUMENT_EXTENSIONS,
    TEXT_PAGE_CHARS,
    DocumentError,
    IngestCancelled,
    PasswordRequired,
    WrongPassword,
    decrypted_pdf,
    parse_document,
    render_page,
    render_size,
    sniff_kind,
)
from engine import ImagePart, Message, TextPart
from engine.image_plan import LLAMA_CPP, TileBudget, image_tokens
from errors import UserError
from tests.conftest import REPO, png_bytes
from tests.fixtures import documents as make
from tests.fixtures.bad_documents import PASSWORDS, bad_documents, encrypted_pdf

FILLER = " The keeper logs the weather, trims the wick and writes to the harbour master."


def numbered_pages(count: int) -> list[str]:
    return [make.page_sentence(n) + FILLER * 3 for n in range(1, count + 1)]


def image_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        return img.size


# --- PDF text, page by page ---------------------------------------------------------


def test_pdf_pages_keep_their_numbers_and_text():
    texts = numbered_pages(12)
    data = make.text_pdf(texts)
    doc = parse_document(data, "keeper.pdf")
    assert (doc.kind, doc.mime, doc.name) == ("pdf", "application/pdf", "keeper.pdf")
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert [p.number for p in doc.pages] == list(range(1, 13))
    for page, text in zip(doc.pages, texts, strict=True):
        assert " ".join(page.text.split()) == text  # same words, whatever the line breaks
        assert not page.needs_vision and page.image_fraction == 0
        assert (page.width, page.height) == (make.PAGE_W, make.PAGE_H)
    assert doc.pages_with_text == 12 and doc.pages_needing_vision == 0
    assert doc.chars == sum(len(p.text) for p in doc.pages)
    assert doc.estimated_tokens == sum(math.ceil(len(p.text) / 4) for p in doc.pages)


def test_typed_and_scanned_pages_mixed():
    pages = parse_document(make.scanned_pdf([None, "Typed page." + FILLER, None]), "mixed.pdf").pages
    assert [p.needs_vision for p in pages] == [True, False, True]
    assert "Typed page." in pages[1].text and pages[1].image_fraction == 0


def test_scanned_pages_need_vision_and_cost_image_tokens():
    doc = parse_document(make.scanned_pdf(pages=2), "scan.pdf")
    assert [p.needs_vision for p in doc.pages] == [True, True]
    assert all(p.image_fraction > 0.95 and not p.has_text for p in doc.pages)
    assert doc.pages_with_text == 0 and doc.pages_needing_vision == 2
    per_page = image_tokens(*render_size(make.PAGE_W, make.PAGE_H), LLAMA_CPP)
    # 3x3 tiles + overview, 2 x separators a row, a y separator after each row, 3 frame tokens
    assert doc.estimated_tokens == 2 * per_page == 2 * (10 * 144 + 9 + 3)


def test_a_page_mostly_covered_by_a_picture_needs_vision_despite_its_caption():
    page = parse_document(make.figure_pdf("Figure 1." + FILLER * 2), "figure.pdf").pages[0]
    assert page.has_text and page.needs_vision
    assert 0.55 < page.image_fraction < 0.75  # the picture covers 532 x 572 pt of 612 x 792


def test_a_page_mostly_covered_by_a_vector_chart_needs_vision():
    page = parse_document(make.chart_pdf("Chart 2." + FILLER * 2), "chart.pdf").pages[0]
    assert page.has_text and page.needs_vision
    assert page.image_fraction == 0  # drawings, not images


def test_a_text_page_with_a_small_logo_and_a_blank_page_go_as_text():
    import pymupdf

    doc = pymupdf.open(stream=make.text_pdf(numbered_pages(1)), filetype="pdf")
    doc[0].insert_image(pymupdf.Rect(500, 20, 560, 60), stream=make.png(30, 20))
    doc.new_page()  # a blank page has nothing to look at
    pages = parse_document(doc.tobytes(), "logo.pdf").pages
    assert not pages[0].needs_vision and 0 < pages[0].image_fraction < 0.05
    assert pages[1].text == "" and not pages[1].needs_vision and not pages[1].has_text


# --- the other formats --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "build", "kind", "mime", "words"),
    [
        ("book.epub", lambda: make.epub(["Call me Ishmael." + FILLER, "Chapter two." + FILLER]), "epub",
         "application/epub+zip", ["Ishmael", "Chapter two"]),
        ("tale.fb2", lambda: make.fb2(["Once upon a time." + FILLER]), "fb2", "application/x-fictionbook+xml",
         ["Once upon a time"]),
        ("drawing.svg", lambda: make.svg("Quarterly lighthouse visits"), "svg", "image/svg+xml",
         ["Quarterly lighthouse visits"]),
        ("paper.xps", lambda: make.xps(["XPS first page" + FILLER, "XPS second page"]), "xps",
         "application/oxps", ["XPS first page", "XPS second page"]),
    ],
)  # fmt: skip
def test_other_formats_give_page_text(name, build, kind, mime, words):
    doc = parse_document(build(), name)
    assert (doc.kind, doc.mime) == (kind, mime)
    joined = " ".join(" ".join(p.text.split()) for p in doc.pages)
    assert all(word in joined for word in words)
    assert [p.number for p in doc.pages] == list(range(1, len(doc.pages) + 1))


def test_xps_pages_are_split_as_in_the_file():
    pages = parse_document(make.xps(["first" + FILLER, "second" + FILLER]), "paper.oxps").pages
    assert len(pages) == 2 and "first" in pages[0].text and "second" in pages[1].text


def test_comic_book_pages_are_pictures():
    doc = parse_document(make.cbz(3), "comic.cbz")
    assert doc.kind == "cbz" and len(doc.pages) == 3
    assert all(p.needs_vision and p.image_fraction > 0.95 for p in doc.pages)
    image = render_page(make.cbz(3), 2, name="comic.cbz")
    assert (image.width, image.height) == (90, 135)  # 60x90 px at 96 dpi = 45x67.5 pt, at 144 dpi


def test_mobi_is_recognised_by_its_header():
    header = bytes(60) + b"BOOKMOBI" + bytes(100)
    assert sniff_kind(header, "book.bin") == "mobi"


def test_the_bytes_decide_the_kind_not_the_extension():
    assert sniff_kind(make.epub(["x"]), "book.pdf") == "epub"
    assert sniff_kind(b"%PDF-1.7\n...", "scan.txt") == "pdf"
    assert sniff_kind(b"# Title\nsome *markdown*", "README") == "text"
    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(
        DocumentError, match=r"^letter.docx is not a document this app can read \(looks like Word"
    ):
        sniff_kind(docx.getvalue(), "letter.docx")
    assert {".pdf", ".epub", ".md", ".txt", ".cbz"} <= set(DOCUMENT_EXTENSIONS)


# --- plain text and Markdown --------------------------------------------------------


def test_text_files_are_paged_at_line_ends():
    lines = [f"line {n}: " + "word " * (n % 17) for n in range(900)]
    text = "\n".join(lines) + "\n"
    doc = parse_document(text.encode(), "notes.txt")
    assert (doc.kind, doc.mime) == ("text", "text/plain")
    assert "".join(p.text for p in doc.pages) == text  # nothing lost, nothing repeated
    longest_line = max(len(line) for line in lines) + 1
    assert all(len(p.text) <= TEXT_PAGE_CHARS and p.text.endswith("\n") for p in doc.pages)
    assert all(len(p.text) > TEXT_PAGE_CHARS - longest_line for p in doc.pages[:-1])  # pages are full
    assert [p.number for p in doc.pages] == list(range(1, len(doc.pages) + 1))
    assert not any(p.needs_vision for p in doc.pages) and doc.pages_with_text == len(doc.pages)


def test_markdown_with_bom_crlf_and_one_very_long_line():
    body = "# Title\r\n" + "x" * (TEXT_PAGE_CHARS * 2 + 10) + "\r\nend\r\n"
    doc = parse_document(b"\xef\xbb\xbf" + body.encode(), "README.md")
    assert doc.mime == "text/markdown"
    assert "".join(p.text for p in doc.pages) == body.replace("\r\n", "\n")
    # The title line, two full pages of the long line cut hard, then its end.
    assert [len(p.text) for p in doc.pages] == [8, TEXT_PAGE_CHARS, TEXT_PAGE_CHARS, 15]


def test_text_files_have_no_page_images():
    with pytest.raises(DocumentError, match=r"notes\.txt is a text file"):
        render_page(b"hello\n", 1, name="notes.txt")


# --- pages as images ----------------------------------------------------------------


def test_render_page_is_sized_for_llama4_tiles():
    data = make.text_pdf(numbered_pages(3))
    image = render_page(data, 2, name="keeper.pdf")
    assert isinstance(image, ImagePart) and image.mime == "image/png" and image.name == "keeper.pdf p. 2"
    assert (image.width, image.height) == image_size(image.data) == (1039, 1344)  # 144 dpi, capped at 4 tiles
    assert (image.width, image.height) == render_size(make.PAGE_W, make.PAGE_H)
    assert image_size(render_page(data, 1, dpi=72).data) == (612, 792)
    assert max(image_size(render_page(data, 1, max_side_px=336).data)) == 336
    small = render_page(data, 1, max_pixels=100_000)
    assert 99_000 < small.width * small.height <= 100_000
    assert (small.width, small.height) == render_size(make.PAGE_W, make.PAGE_H, max_pixels=100_000)


def test_render_clamps_a_giant_page_to_the_pixel_cap():
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=14_400, height=14_400)  # 200 x 200 inches, PDF's largest page
    image = render_page(doc.tobytes(), 1, name="poster.pdf", max_side_px=100_000, max_pixels=4_000_000)
    assert image.width * image.height <= 4_000_000 and image.width == image.height


def test_render_page_refuses_pages_that_do_not_exist():
    data = make.text_pdf(numbered_pages(2))
    for number in (0, 3):
        with pytest.raises(DocumentError, match=rf"keeper.pdf has no page {number} \(it has 2\)"):
            render_page(data, number, name="keeper.pdf")


@pytest.mark.parametrize(
    ("size", "tokens"),
    [((336, 336), 147), ((200, 100), 147), ((672, 336), 3 * 144 + 2 + 3), ((1039, 1344), 10 * 144 + 9 + 3),
     ((5000, 300), 4 * 144 + 3 + 3), ((0, 10), 0)],
)  # fmt: skip
def test_llama4_image_tokens_for_scout_on_llama_cpp(size, tokens):
    assert image_tokens(*size, LLAMA_CPP) == tokens


@pytest.mark.parametrize(
    "size", [(56, 56), (30, 30), (57, 56), (112, 56), (168, 168), (60, 170), (150, 80), (40, 100), (1000, 90)]
)
def test_llama4_image_tokens_match_llama_cpp(tiny_engine, size):
    """The plan at the tiny fixture's 56 px / 4 token tiles equals what mtmd really
    tokenizes, so at Scout's 336 px / 144 it is what llama.cpp will spend."""

    def user(*parts):
        return Message("user", tuple(TextPart(p) if isinstance(p, str) else p for p in parts))

    assert tiny_engine.tile_budget == TileBudget(tile=56, max_tiles=9, max_side=3)
    image = ImagePart(png_bytes(*size), "image/png", "x.png", *size)
    cost = tiny_engine.count_tokens([user(image, "hi")]) - tiny_engine.count_tokens([user("hi")])
    assert cost == image_tokens(*size, tiny_engine.tile_budget)


# --- passwords, progress, cancel ----------------------------------------------------


def test_encrypted_pdf_opens_with_its_password():
    data = encrypted_pdf("s3cret")
    with pytest.raises(PasswordRequired):
        parse_document(data, "locked.pdf")
    with pytest.raises(WrongPassword):
        render_page(data, 1, name="locked.pdf", password="nope")
    doc = parse_document(data, "locked.pdf", password="s3cret")
    assert "Page 1 talks" in doc.pages[0].text
    assert render_page(data, 1, name="locked.pdf", password="s3cret").width > 0


def test_decrypted_pdf_draws_without_the_password():
    data = encrypted_pdf("s3cret")
    unlocked = decrypted_pdf(data, "s3cret", "locked.pdf")
    page = parse_document(unlocked, "locked.pdf").pages[0]  # no password needed any more
    assert page.text == parse_document(data, "locked.pdf", password="s3cret").pages[0].text
    assert render_page(unlocked, 1).width > 0
    with pytest.raises(WrongPassword):
        decrypted_pdf(data, "nope", "locked.pdf")
    plain = make.text_pdf(["not locked"])
    assert decrypted_pdf(plain, None) is plain


def test_progress_is_reported_about_every_percent():
    calls = []
    parse_document(make.blank_pages_pdf(250), "long.pdf", progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert 100 <= len(calls) <= 130 and fractions == sorted(fractions)
    assert calls[-1] == (1.0, "reading long.pdf: page 250 of 250")
    assert calls[0][1] == "reading long.pdf: page 2 of 250"


def test_cancel_stops_the_ingest_between_pages():
    cancel = threading.Event()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if len(seen) == 5:
            cancel.set()

    with pytest.raises(IngestCancelled, match=r"^reading long.pdf was cancelled$"):
        parse_document(make.blank_pages_pdf(400), "long.pdf", progress=progress, cancel=cancel)
    assert len(seen) == 5 and seen[-1] < 0.1  # stopped right after, not at the end


# --- the bad-document corpus --------------------------------------------------------

BAD = bad_documents()


@pytest.mark.parametrize("label", sorted(BAD))
def test_bad_documents_give_one_clear_line(label, capfd):
    name, data, expected = BAD[label]
    password = PASSWORDS.get(label)
    with pytest.raises(DocumentError) as caught:
        doc = parse_document(data, name, password=password)
        for page in doc.pages:  # a page that parses can still refuse to be drawn
            render_page(data, page.number, name=name, password=password)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert isinstance(caught.value, UserError)  # one line, exit 2, a 400
    assert capfd.readouterr().err == ""  # MuPDF's own complaints stay off the terminal


def test_the_page_limit_is_a_parameter():
    data = make.blank_pages_pdf(30)
    with pytest.raises(DocumentError, match=r"has 30 pages; the limit is 20 \(L4P_MAX_DOC_PAGES\)"):
        parse_document(data, "a.pdf", max_pages=20)
    assert len(parse_document(data, "a.pdf", max_pages=30).pages) == 30


def test_importing_has_no_side_effects():
    code = (
        "import sys, documents.reader, tests.fixtures.bad_documents, tests.fixtures.documents; "
        "assert 'pymupdf' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
