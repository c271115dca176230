"""Pages scanned on their side or upside down are read the right way up: a real text PDF
drawn to an image, turned 90, 180 or 270 degrees, rebuilt as an image-only PDF, and the
OCR text scored against the original text layer."""

from __future__ import annotations

import pytest

from documents import ocr, rotation, workers
from documents.reader import parse_document
from tests.fixtures import scans


@pytest.fixture(scope="module")
def english() -> bytes:
    return scans.udhr_pdf("en", 1)


@pytest.fixture
def in_process():
    workers.configure(0)  # no fork: the reading can be watched
    yield
    workers.configure(None)
    ocr.configure(ocr.OcrSettings())


def recall_of(original: bytes, scan: scans.Scan) -> tuple[float, str]:
    text = parse_document(scans.scanned_pdf(original, scan), "turned.pdf").pages[0].text
    return scans.recall_precision(scans.pages_text(original)[0], text)[0], text


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_page_scanned_turned_is_read_the_right_way_up(in_process, english, degrees):
    scan = scans.Scan(dpi=150, grey=True, degrees=1.0, jpeg_quality=50, turned=degrees)
    recall, text = recall_of(english, scan)
    assert recall >= 0.9, (recall, text[:300])


def test_without_turning_a_sideways_page_reads_as_noise(in_process, english):
    ocr.configure(ocr.OcrSettings(turn_pages=False))
    recall, _ = recall_of(english, scans.Scan(turned=90))
    assert recall < 0.3


def test_an_upright_page_is_read_once(in_process, english, monkeypatch):
    turns: list[int] = []
    reading = ocr.read_turned
    monkeypatch.setattr(
        ocr,
        "read_turned",
        lambda page, degrees, *rest: turns.append(degrees) or reading(page, degrees, *rest),
    )
    recall, _ = recall_of(english, scans.POOR)
    assert recall >= 0.9 and turns == [0]


def test_which_text_reads_upright():
    upright = "Everyone has the right to life, liberty and security of person. " * 3
    assert rotation.reads_upright(upright)
    assert not rotation.reads_upright("lo pue ,osn!l :ʎʇ!unƃ!p u! ǝɹɐ sƃu!ǝq uɐɯnɥ ||∀ " * 3)
    assert not rotation.reads_upright("")
    assert rotation.reads_upright("人人生而自由，在尊严和权利上一律平等。")  # a script it cannot judge: kept
    readings = {90: "noise qz", 180: "the right of the people and the law", 270: "in on"}
    assert rotation.best_turn(readings.get, "xx yy", deadline=float("inf")) == 180
    assert rotation.best_turn(readings.get, upright, deadline=float("inf")) == 0
    assert rotation.best_turn(readings.get, "xx", deadline=0.0) == 0  # no time left: as read
    soup = {90: "2) i any os ga=", 180: "Nn z Comm", 270: "io)7 1o2)"}  # a drawing's title, turned
    assert rotation.best_turn(soup.get, "Quarterly lighthouse visits", deadline=float("inf")) == 0
