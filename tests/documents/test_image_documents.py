"""Every raster image Pillow decodes is accepted: as an image (re-encoded once to what
the backend takes) or as a document (a scan, a photo of a page, a multi-page TIFF whose
frames are its pages, read by OCR). Only undecodable or over-limit images are refused,
in one line, judged from the header before anything is decoded."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from documents import workers
from documents.reader import DocumentError, parse_document, render_page, sniff_kind
from engine.images import image_from_bytes
from engine.types import EngineInputError
from tests.fixtures import scans


@pytest.fixture
def pool_of():
    def configure(size: int):
        workers.configure(size)

    yield configure
    workers.configure(None)


def encoded(fmt: str, mode: str = "RGB", size=(40, 30), **options) -> bytes:
    from PIL import Image

    image = Image.new(mode, size, 200 if mode in ("L", "I;16", "I", "F", "1", "P") else (200, 30, 30))
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


FORMATS = [
    ("TIFF", "RGB", {}),
    ("TIFF", "I;16", {}),  # a 16-bit grey scientific TIFF
    ("TIFF", "CMYK", {"compression": "tiff_lzw"}),
    ("BMP", "RGB", {}),
    ("TGA", "RGB", {}),
    ("WEBP", "RGB", {}),
    ("GIF", "P", {}),
    ("PPM", "RGB", {}),
    ("ICO", "RGBA", {}),
    ("JPEG2000", "RGB", {}),
    ("QOI", "RGBA", {}),
]


@pytest.mark.parametrize(("fmt", "mode", "options"), FORMATS, ids=[f"{f}-{m}" for f, m, _ in FORMATS])
def test_every_decodable_image_is_accepted_as_png_or_jpeg(fmt, mode, options):
    from PIL import Image

    part = image_from_bytes(encoded(fmt, mode, **options), f"upload.{fmt.lower()}")
    assert part.mime in ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(part.data)) as decoded:
        assert decoded.format in ("PNG", "JPEG") and decoded.size == (part.width, part.height)


def test_avif_when_pillow_has_it():
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    part = image_from_bytes(encoded("AVIF"), "phone.avif")
    assert part.mime == "image/png" and part.width == 40


def bmp_header_only(width: int, height: int) -> bytes:
    """A small BMP whose header declares width x height (its pixels are not there)."""
    data = bytearray(encoded("BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def test_bombs_and_broken_images_are_refused_in_one_line(pool_of):
    pool_of(1)
    broken = encoded("BMP")[:80]
    for data, message in (
        (bmp_header_only(100_000, 100_000), "too many pixels"),
        (bmp_header_only(8_000, 8_000), "over the 40,000,000 pixel limit"),
        (broken, "damaged or truncated"),
        (b"\x00\x01" + zlib.compress(b"noise") * 3, "not an image"),
    ):
        with pytest.raises(EngineInputError, match=message) as info:
            image_from_bytes(data, "upload")
        assert "\n" not in str(info.value)
    for data, message in (
        (bmp_header_only(100_000, 100_000), "too many pixels"),
        (bmp_header_only(8_000, 8_000), "over the 40,000,000 pixel limit"),
        (broken, "damaged or truncated"),
    ):
        with pytest.raises(DocumentError, match=message) as info:
            parse_document(data, "scan.tif")
        assert "\n" not in str(info.value)


def test_a_multipage_tiff_is_a_document_whose_frames_are_ocr_pages(pool_of):
    pool_of(1)
    original = scans.udhr_pdf("en", 2)
    tiff = scans.scanned_tiff(original, scans.POOR)
    assert sniff_kind(tiff, "scan.tif") == "image"
    parsed = parse_document(tiff, "scan.tif")
    assert (parsed.kind, parsed.mime, len(parsed.pages)) == ("image", "image/tiff", 2)
    for page, truth in zip(parsed.pages, scans.pages_text(original), strict=True):
        recall, precision, _ = scans.recall_precision(truth, page.text)
        assert page.ocr and recall >= 0.9 and precision >= 0.9, (recall, precision)
    # The page is drawn from the frame, at the frame's own size in points.
    assert parsed.pages[0].width == pytest.approx(595, abs=2)  # A4 at the TIFF's 150 DPI
    drawn = render_page(tiff, 2, name="scan.tif")
    assert drawn.mime == "image/png" and drawn.height > drawn.width


def test_an_image_named_as_another_document_is_still_refused():
    with pytest.raises(DocumentError, match=r"report\.pdf is not a PDF: its bytes look like PNG image"):
        sniff_kind(encoded("PNG"), "report.pdf")
    assert sniff_kind(encoded("TGA"), "scan.tga") == "image"
