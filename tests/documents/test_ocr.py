"""Scanned pages are read by OCR: real text PDFs drawn to images (some grey, turned and
JPEG-compressed), rebuilt as image-only PDFs, and the OCR text scored against the
original text layer. OCR runs in the document workers page by page, with progress,
Stop, and bounds; its text is page text (stored with a flag, searchable, cited); the
same PDF ingested twice is read once."""

from __future__ import annotations

import threading

import pytest

from documents import ocr, workers
from documents.reader import IngestCancelled, parse_document
from tests.fixtures import scans

GUARD_S = 300


@pytest.fixture(scope="module")
def english() -> bytes:
    return scans.udhr_pdf("en", 2)


@pytest.fixture(scope="module")
def poor_scan(english) -> bytes:
    return scans.scanned_pdf(english, scans.POOR)


@pytest.fixture
def pool_of():
    def configure(size: int):
        workers.configure(size)
        return workers.shared()

    yield configure
    workers.configure(None)


@pytest.fixture
def ocr_settings():
    def configure(**changes):
        ocr.configure(ocr.OcrSettings(**changes))

    yield configure
    ocr.configure(ocr.OcrSettings())


def test_the_language_data_comes_from_the_package():
    folder = ocr.tessdata_folder(ocr.OcrSettings())
    assert folder is not None, f"no .traineddata found; install {ocr.DATA_PACKAGE}"
    assert "eng" in ocr.installed_languages(folder)
    assert ocr.language_spec(ocr.OcrSettings(languages="eng+xyz"), folder) == "eng"


def test_a_poor_scan_is_read_in_a_worker(pool_of, english, poor_scan):
    pool_of(1)
    seen: list[str] = []
    parsed = parse_document(poor_scan, "scan.pdf", progress=lambda _, text: seen.append(text))
    truth = scans.pages_text(english)
    assert [page.ocr for page in parsed.pages] == [True, True]
    for page, original in zip(parsed.pages, truth, strict=True):
        recall, precision, _ = scans.recall_precision(original, page.text)
        assert recall >= 0.9 and precision >= 0.9, (recall, precision, page.text)
    assert parsed.pages_with_text == 2
    assert any(text.startswith("OCR of scan.pdf: page 2") for text in seen)


def test_french_accents_survive_a_clean_scan(pool_of):
    pool_of(0)  # in this process: no fork, the same reading
    original = scans.udhr_pdf("fr", 1)
    parsed = parse_document(scans.scanned_pdf(original), "fr.pdf")
    recall, precision, _ = scans.recall_precision(scans.pages_text(original)[0], parsed.pages[0].text)
    assert recall >= 0.85 and precision >= 0.85, (recall, precision)
    assert "fraternité" in parsed.pages[0].text


def test_pages_with_a_text_layer_keep_it(pool_of, english):
    pool_of(1)
    scanned_page = scans.scanned_pdf(scans.udhr_pdf("en", 1))
    import pymupdf

    mixed = pymupdf.open(stream=english, filetype="pdf")
    mixed.insert_pdf(pymupdf.open(stream=scanned_page, filetype="pdf"))
    parsed = parse_document(mixed.tobytes(), "mixed.pdf")
    assert [page.ocr for page in parsed.pages] == [False, False, True]
    assert parsed.pages[0].text == scans.pages_text(english)[0]
    assert "brotherhood" in parsed.pages[2].text


def test_stop_ends_ocr_between_pages(pool_of, poor_scan):
    pool_of(1)
    cancel = threading.Event()

    def progress(_fraction: float, text: str) -> None:
        if text.startswith("OCR of"):
            cancel.set()  # Stop as the first page's OCR starts

    with pytest.raises(IngestCancelled, match="cancelled"):
        parse_document(poor_scan, "scan.pdf", progress=progress, cancel=cancel)
    # The worker is usable afterwards.
    assert parse_document(scans.udhr_pdf("en", 1), "text.pdf").pages[0].ocr is False


def test_a_page_over_its_time_is_left_without_text(pool_of, ocr_settings, poor_scan):
    pool_of(1)
    ocr_settings(page_seconds=0.01)
    parsed = parse_document(poor_scan, "scan.pdf")
    assert [(page.ocr, page.has_text) for page in parsed.pages] == [(False, False), (False, False)]


def test_pages_past_the_limit_are_not_read(pool_of, ocr_settings, poor_scan):
    pool_of(1)
    ocr_settings(max_pages=1)
    parsed = parse_document(poor_scan, "scan.pdf")
    assert [page.ocr for page in parsed.pages] == [True, False]
    ocr_settings(enabled=False)
    assert not any(page.ocr for page in parse_document(poor_scan, "scan.pdf").pages)
    assert not any(page.ocr for page in parse_document(poor_scan, "scan.pdf", ocr=False).pages)


def test_the_pixel_cap_lowers_the_dpi():
    letter = (612, 792)
    assert ocr.ocr_dpi(*letter, ocr.OcrSettings()) == 300
    small = ocr.OcrSettings(max_pixels=1_000_000)
    dpi = ocr.ocr_dpi(*letter, small)
    assert dpi < 300 and (612 * dpi / 72) * (792 * dpi / 72) <= 1_000_000


def test_ocr_text_is_stored_searched_and_read_once(tmp_path, pool_of, monkeypatch, english, poor_scan):
    from documents.context import document_parts
    from documents.parts import DocumentPart
    from sessions import Store

    pool_of(0)  # in this process, so the reads can be counted
    reads: list[int] = []
    real_read = ocr.read_page

    def counted(page, *args):
        reads.append(page.number)
        return real_read(page, *args)

    monkeypatch.setattr(ocr, "read_page", counted)
    with Store(tmp_path / "data") as store:
        row = store.ingest_document(poor_scan, "scan.pdf")
        assert reads == [0, 1] and row.pages_with_text == 2
        again = store.ingest_document(poor_scan, "copy.pdf")  # same bytes: no OCR again
        assert reads == [0, 1] and again.sha256 == row.sha256
        pages = store.document_pages(row.sha256)
        assert [page.ocr for page in pages] == [True, True]
        assert store.rank_pages(row.sha256, "who is held in slavery?")[0] == 2
        doc = DocumentPart(row.sha256, "scan.pdf", 2, text_pages=(1, 2))
        prompt = "".join(part.text for part in document_parts(doc, store))
        assert "[p. 1]\nWhereas" in prompt and "brotherhood" in prompt


def test_the_page_viewer_marks_ocr_text(tmp_path, pool_of, poor_scan, english):
    from app.page_viewer import OCR_NOTE, page_view
    from documents.parts import DocumentPart
    from sessions import Store
    from sessions.library import DocumentLibrary

    pool_of(0)
    with Store(tmp_path / "data") as store:
        scanned = store.ingest_document(poor_scan, "scan.pdf")
        typed = store.ingest_document(english, "typed.pdf")
        library = DocumentLibrary(store)
        docs = [
            DocumentPart(scanned.sha256, "scan.pdf", 2, (1,)),
            DocumentPart(typed.sha256, "typed.pdf", 2, (1,)),
        ]
        assert OCR_NOTE in page_view(library, docs, f"{scanned.sha256[:16]}-1").text_html
        assert OCR_NOTE not in page_view(library, docs, f"{typed.sha256[:16]}-1").text_html
