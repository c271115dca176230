"""An image read as a document: a scan, a photo of a page, a screenshot, a multi-page
TIFF whose frames are its pages. Pillow decodes it (every raster format it knows,
including those MuPDF does not: WebP, AVIF, TGA, 16-bit TIFF) and each page becomes one
page of a PDF that MuPDF then reads, draws and OCRs like any scan.

Every frame's size is judged from its header before it is decoded, and the frame
count before any frame is: a small file cannot make the worker allocate a bomb.
Runs in a document worker (documents/mupdf_pages.py). Importing this module is free."""

from __future__ import annotations

import io

from documents.pages import DocumentError, check_page_count

SCAN_DPI = 150  # assumed when the file does not say (most phone photos and screenshots)
FRAMES_AS_PAGES = ("TIFF",)  # other formats' frames are animation: the first is the page


def image_document_pdf(data: bytes, name: str, max_pixels: int, max_pages: int = 2000) -> bytes:
    """A PDF with one page per frame, each page the frame's size at its DPI."""
    import pymupdf

    out = pymupdf.open()
    with _opened(data, name) as image:
        frames = getattr(image, "n_frames", 1) if image.format in FRAMES_AS_PAGES else 1
        check_page_count(frames, name, max_pages)
        for index in range(frames):
            image.seek(index)
            width, height = image.size
            if width * height > max_pixels:
                raise DocumentError(
                    f"{name} page {index + 1} is {width:,}x{height:,} pixels, "
                    f"over the {max_pixels:,} pixel limit"
                )
            png = _decoded_png(image, name, index)
            dpi_x, dpi_y = _dpi(image.info)
            page = out.new_page(width=width * 72 / dpi_x, height=height * 72 / dpi_y)
            page.insert_image(page.rect, stream=png)
    return out.tobytes(garbage=1)


def _opened(data: bytes, name: str):
    from PIL import Image

    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise DocumentError(f"{name} declares too many pixels to open safely") from None
    except Exception:  # the sniffer saw an image's signature; its header is broken
        raise DocumentError(f"{name} is damaged or truncated: its image cannot be decoded") from None


def _decoded_png(image, name: str, index: int) -> bytes:
    from engine.images import to_png

    try:
        image.load()
        return to_png(image)
    except Exception:
        where = f" (page {index + 1})" if index else ""
        raise DocumentError(f"{name} is damaged or truncated{where}: its image cannot be decoded") from None


def _dpi(info: dict) -> tuple[float, float]:
    """The file's DPI when it is a believable one (a 72 in a screenshot's header is
    usually a default, but it is what the file says)."""
    found = info.get("dpi") or (SCAN_DPI, SCAN_DPI)
    try:
        x, y = float(found[0]), float(found[1])
    except (TypeError, ValueError, IndexError):
        return SCAN_DPI, SCAN_DPI
    if not (36 <= x <= 2400 and 36 <= y <= 2400):
        return SCAN_DPI, SCAN_DPI
    return x, y


def image_format(data: bytes) -> str | None:
    """Pillow's name for the image format the bytes hold (from the header), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except Image.DecompressionBombError:
        return "image"  # an image, and one the reader will refuse with its size
    except Exception:
        return None


def image_mime(data: bytes) -> str:
    from PIL import Image

    fmt = image_format(data)
    return Image.MIME.get(fmt or "", "application/octet-stream")
