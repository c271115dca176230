"""The MuPDF side of reading documents: what runs in a document worker process
(documents/workers.py), or in the caller's own process, one document at a time, when
the pool is turned off (L4P_DOC_WORKERS=0).

PyMuPDF is not thread-safe; a worker runs one operation at a time, so nothing here
shares a document between threads. The operations take what reader.py already
sniffed and bounded, and return plain data (pages, a PNG, bytes)."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import replace

from documents.bounds import check_archived_svgs, check_data_uri_images, check_declared, check_inflated
from documents.pages import (
    DEFAULT_MAX_PIXELS,
    MIN_TEXT_CHARS,
    ZIP_KINDS,
    DocumentError,
    IngestCancelled,
    PageText,
    PasswordRequired,
    ProgressFn,
    WrongPassword,
    check_page_count,
    visible_chars,
    zoom_for,
)
from engine.types import ImagePart

FIGURE_FRACTION = 0.5  # images/drawings covering more of the page than this need vision
# Vector drawings are only measured on pages with little text: the measurement costs as
# much as the text extraction itself, and a page this full of text reads fine as text.
FIGURE_CHECK_MAX_CHARS = 1200
COVERAGE_GRID = 32  # cells per side when measuring the union of image/drawing boxes
HAIRLINE_PT = 3  # drawings thinner than this are rules and borders, not figures

# Only for reading in the caller's process (no pool): one document open at a time.
MUPDF_LOCK = threading.RLock()


# --- the operations a worker runs ----------------------------------------------------


def read_pages(
    data: bytes,
    name: str,
    kind: str,
    password: str | None,
    max_pages: int,
    ocr=None,
    progress: ProgressFn | None = None,
    cancel=None,
) -> tuple[PageText, ...]:
    """Every page's text and whether it needs to be seen (cancel: anything with is_set);
    with `ocr` (documents.ocr.OcrSettings), pages without a text layer are then OCR'd."""
    if kind in ZIP_KINDS:  # sniffing checked the declared sizes; now the real ones
        entries = check_declared(data, name)
        check_inflated(data, name, entries)
        check_archived_svgs(data, name, entries, DEFAULT_MAX_PIXELS)
    with _OpenDocument(data, name, kind, password, max_pages=max_pages) as doc:
        check_page_count(doc.page_count, name, max_pages)
        pages = _read_pages(doc, name, progress, cancel)
        if ocr is not None and ocr.enabled:
            pages = _ocr_pages(doc, pages, name, ocr, progress, cancel)
        return pages


def render(
    data: bytes | None,
    number: int,
    name: str,
    kind: str,
    password: str | None,
    dpi: int,
    max_side_px: int,
    max_pixels: int,
    key: str | None = None,
) -> ImagePart:
    """Page `number` drawn. With a `key` (in a worker) the document stays open for the
    next page, and `data` may be None when the caller knows the worker holds it."""
    if key is not None:
        doc = OPEN_DOCUMENTS.get(key, data, name, kind, password, max_pixels)
        return _draw(doc, number, name, dpi, max_side_px, max_pixels)
    if data is None:
        raise NotCached(key)
    with _OpenDocument(data, name, kind, password, max_pixels) as doc:
        return _draw(doc, number, name, dpi, max_side_px, max_pixels)


def _draw(doc, number: int, name: str, dpi: int, max_side_px: int, max_pixels: int) -> ImagePart:
    if not 1 <= number <= doc.page_count:
        raise DocumentError(f"{name} has no page {number} (it has {doc.page_count:,})")
    try:
        page = doc.load_page(number - 1)
        _refuse_huge_images(page, doc.is_pdf, name, number, max_pixels)
        rect = page.rect
        zoom = zoom_for(rect.width, rect.height, dpi, max_side_px, max_pixels)
        pixmap = page.get_pixmap(matrix=_pymupdf().Matrix(zoom, zoom), alpha=False)
        png = pixmap.tobytes("png")
    except DocumentError:
        raise
    except Exception as exc:
        raise DocumentError(f"{name} is damaged or truncated (page {number} cannot be drawn)") from exc
    return ImagePart(png, "image/png", f"{name} p. {number}", pixmap.width, pixmap.height)


class NotCached(Exception):
    """The worker no longer holds the document the caller meant it to reuse."""


class OpenDocuments:
    """Documents a worker keeps open between renders, least recently used closed first:
    an EPUB is laid out once, not again for every page a chat sends. Only in a worker
    process, where one operation runs at a time."""

    def __init__(self, size: int = 2):
        self.size = size
        self._open: OrderedDict[str, _OpenDocument] = OrderedDict()

    def get(self, key: str, data: bytes | None, name: str, kind: str, password: str | None, max_pixels: int):
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key].doc
        if data is None:
            raise NotCached(key)
        opened = _OpenDocument(data, name, kind, password, max_pixels)
        opened.__enter__()
        self._open[key] = opened
        while len(self._open) > self.size:
            _, oldest = self._open.popitem(last=False)
            oldest.__exit__()
        return opened.doc


OPEN_DOCUMENTS = OpenDocuments()


def decrypt(data: bytes, name: str, password: str | None) -> bytes | None:
    """The PDF saved without its password; None when it was not encrypted."""
    with _OpenDocument(data, name, "pdf", password) as doc:
        if not (doc.metadata or {}).get("encryption"):  # after authenticate, only metadata tells
            return None
        try:
            return doc.tobytes(encryption=_pymupdf().PDF_ENCRYPT_NONE, garbage=1)
        except Exception as exc:
            raise DocumentError(f"{name} is damaged or truncated (it cannot be unlocked)") from exc


def count_pages(data: bytes, name: str) -> int | None:
    """A PDF's page count from its page tree, no page read; None when it is locked
    (a password opens it when it is sent)."""
    try:
        doc = _pymupdf().open(stream=data, filetype="pdf")
    except Exception:  # FileDataError, RuntimeError: MuPDF gave up on the bytes
        raise DocumentError(f"{name} is damaged or truncated (it cannot be opened)") from None
    try:
        return None if doc.needs_pass else doc.page_count
    finally:
        doc.close()


OPERATIONS = {"read_pages": read_pages, "render": render, "decrypt": decrypt, "count_pages": count_pages}


def run_here(operation: str, args: tuple, progress: ProgressFn | None = None, cancel=None):
    """An operation in the caller's process, one document at a time (no pool)."""
    with MUPDF_LOCK:
        if operation == "read_pages":
            return read_pages(*args, progress=progress, cancel=cancel)
        return OPERATIONS[operation](*args)


# --- reading pages -------------------------------------------------------------------


def _read_pages(doc, name: str, progress: ProgressFn | None, cancel):
    count = doc.page_count
    step = max(1, count // 100)
    pages = []
    for index in range(count):
        if cancel is not None and cancel.is_set():
            raise IngestCancelled(f"reading {name} was cancelled")
        pages.append(_page_text(doc, index, name))
        done = index + 1
        if progress is not None and (done % step == 0 or done == count):
            progress(done / count, f"reading {name}: page {done:,} of {count:,}")
    return tuple(pages)


def _ocr_pages(doc, pages: tuple[PageText, ...], name: str, settings, progress, cancel):
    """Pages without a usable text layer, read by OCR, up to settings.max_pages of them;
    a page's OCR text replaces its text layer only when it holds more."""
    from documents import ocr

    wanted = [page for page in pages if ocr.needs_ocr(page)][: settings.max_pages]
    folder = ocr.tessdata_folder(settings) if wanted else None
    if folder is None:  # nothing to read, or no language data to read with
        return pages
    language = ocr.language_spec(settings, folder)
    result = list(pages)
    for done, page in enumerate(wanted):
        if cancel is not None and cancel.is_set():
            raise IngestCancelled(f"reading {name} was cancelled")
        if progress is not None:
            label = f"OCR of {name}: page {page.number:,} ({done + 1:,} of {len(wanted):,})"
            progress(done / len(wanted), label)
        text = _ocr_page(doc, page, name, settings, language, folder, cancel)
        if text is not None and visible_chars(text) > visible_chars(page.text):
            result[page.number - 1] = replace(page, text=text, ocr=True)
    if progress is not None:
        progress(1.0, f"OCR of {name}: {len(wanted):,} page(s) read")
    return tuple(result)


def _ocr_page(doc, page: PageText, name: str, settings, language: str, folder: str, cancel) -> str | None:
    """The page's OCR text; None when it cannot be had (an image over the pixel limit,
    past the time a page may take, Tesseract failing): the page keeps what it had."""
    from documents import ocr

    try:
        loaded = doc.load_page(page.number - 1)
        sizes = _declared_image_sizes(loaded, doc.is_pdf)
        if any(width * height > DEFAULT_MAX_PIXELS for width, height in sizes):
            return None  # drawing it would decode the bomb
        return ocr.read_page_bounded(loaded, settings, language, folder, cancel)
    except IngestCancelled:
        raise IngestCancelled(f"reading {name} was cancelled") from None
    except Exception:  # PageTimedOut, a page MuPDF or Tesseract cannot read
        return None


def _page_text(doc, index: int, name: str) -> PageText:
    try:
        page = doc.load_page(index)
        text = page.get_text("text")
        rect = page.rect
        visible = visible_chars(text)
        image_boxes = _image_boxes(page, doc.is_pdf)
        drawing_boxes = _figure_drawing_boxes(page) if visible < FIGURE_CHECK_MAX_CHARS else []
    except Exception as exc:  # MuPDF raises plain RuntimeErrors for broken page content
        raise DocumentError(f"{name} is damaged or truncated (page {index + 1} cannot be read)") from exc
    image_cells = _covered_cells(image_boxes, rect, touched=False)
    figure_cells = image_cells | _covered_cells(drawing_boxes, rect, touched=True)
    # A blank page or a bare heading has nothing to look at; a few words over a
    # picture or a drawing (a scan, a diagram) do.
    sparse_with_figures = visible < MIN_TEXT_CHARS and bool(image_boxes or drawing_boxes)
    needs_vision = sparse_with_figures or len(figure_cells) / COVERAGE_GRID**2 > FIGURE_FRACTION
    image_fraction = len(image_cells) / COVERAGE_GRID**2
    return PageText(index + 1, text, needs_vision, image_fraction, rect.width, rect.height)


def _image_boxes(page, is_pdf: bool) -> list:
    # In a PDF, get_images only reads the page's resources; placing the images costs a
    # second pass over the content, so only pages that have images pay for it.
    if is_pdf and not page.get_images():
        return []
    return [info["bbox"] for info in page.get_image_info()]


def _figure_drawing_boxes(page) -> list:
    """Boxes of vector drawings that can make a figure: filled shapes and strokes, less
    hairlines (rules, table borders) and frames around the whole page."""
    page_area = page.rect.width * page.rect.height
    boxes = []
    for drawing in page.get_cdrawings():
        x0, y0, x1, y1 = drawing["rect"]
        if min(x1 - x0, y1 - y0) < HAIRLINE_PT:
            continue
        if drawing["type"] == "s" and (x1 - x0) * (y1 - y0) > 0.8 * page_area:
            continue
        boxes.append((x0, y0, x1, y1))
    return boxes


def _covered_cells(boxes, rect, *, touched: bool) -> set[tuple[int, int]]:
    """Grid cells of the page under the boxes (so overlaps count once). Images count a
    cell when they cover its centre; drawings when they touch it, because a chart's
    bars and the gaps between them make one figure."""
    cells: set[tuple[int, int]] = set()
    if rect.width <= 0 or rect.height <= 0:
        return cells
    cell_w, cell_h = rect.width / COVERAGE_GRID, rect.height / COVERAGE_GRID
    for x0, y0, x1, y1 in (tuple(b) for b in boxes):
        x0, x1 = max(x0, rect.x0) - rect.x0, min(x1, rect.x1) - rect.x0
        y0, y1 = max(y0, rect.y0) - rect.y0, min(y1, rect.y1) - rect.y0
        if x1 > x0 and y1 > y0:
            cols, rows = _cell_span(x0, x1, cell_w, touched), _cell_span(y0, y1, cell_h, touched)
            cells.update((c, r) for c in cols for r in rows)
    return cells


def _cell_span(low: float, high: float, cell: float, touched: bool) -> range:
    if touched:  # cells [c, c+1) that overlap [low, high]
        return range(math.floor(low / cell), math.ceil(high / cell))
    return range(math.ceil(low / cell - 0.5), math.floor(high / cell - 0.5) + 1)  # centres inside


class _OpenDocument:
    """A PyMuPDF document opened from bytes, authenticated, closed on exit."""

    def __init__(
        self,
        data: bytes,
        name: str,
        kind: str,
        password: str | None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_pages: int = 2000,
    ):
        self.data, self.name, self.kind, self.password = data, name, kind, password
        self.max_pixels, self.max_pages = max_pixels, max_pages

    def __enter__(self):
        pymupdf = _pymupdf()
        if self.kind == "svg":  # MuPDF decodes an SVG's embedded images as it opens it
            check_data_uri_images(self.data, self.name, self.max_pixels)
        data, kind = self.data, self.kind
        if kind == "image":  # its frames as the pages of a PDF, each judged first
            from documents.image_pages import image_document_pdf

            data, kind = image_document_pdf(self.data, self.name, self.max_pixels, self.max_pages), "pdf"
        try:
            self.doc = pymupdf.open(stream=data, filetype=kind)
        except Exception:  # FileDataError, RuntimeError: MuPDF gave up on the bytes
            raise DocumentError(f"{self.name} is damaged or truncated (it cannot be opened)") from None
        try:
            self._check_intact()
            self._authenticate()
        except BaseException:
            self.__exit__()
            raise
        return self.doc

    def __exit__(self, *exc) -> None:
        self.doc.close()

    def _check_intact(self) -> None:
        # MuPDF silently rebuilds a PDF whose end is missing, and the lost pages come
        # back empty; a repaired file without its %%EOF marker was cut short.
        if self.kind == "pdf" and self.doc.is_repaired and b"%%EOF" not in self.data[-2048:]:
            raise DocumentError(f"{self.name} is damaged or truncated (its end is missing)")

    def _authenticate(self) -> None:
        if not self.doc.needs_pass:
            return
        if not self.password:
            raise PasswordRequired(f"{self.name} is encrypted; give its password")
        if not self.doc.authenticate(self.password):
            raise WrongPassword(f"{self.name}: wrong password")


def _pymupdf():
    import pymupdf

    # MuPDF prints every repair and warning to stderr; the messages that matter are ours.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


# --- pages as images ----------------------------------------------------------------


def _refuse_huge_images(page, is_pdf: bool, name: str, number: int, max_pixels: int) -> None:
    """Decompression bombs: a tiny stream can declare 100k x 100k pixels, and MuPDF
    would allocate them all while drawing. Judge the declared size before drawing."""
    for width, height in _declared_image_sizes(page, is_pdf):
        if width * height > max_pixels:
            raise DocumentError(
                f"{name} p. {number} holds an image of {width:,}x{height:,} pixels, "
                f"over the {max_pixels:,} pixel limit"
            )
    if page.rect.width <= 0 or page.rect.height <= 0:
        raise DocumentError(f"{name} p. {number} is damaged (it has no area to draw)")


def _declared_image_sizes(page, is_pdf: bool) -> list[tuple[int, int]]:
    """(width, height) every image on the page declares, read from headers only. A
    PDF lists its image resources; CBZ, EPUB, XPS and SVG pages (a comic's PNG, a data:
    URI in an SVG) are laid out first, which reads each image's header, not its pixels."""
    if is_pdf:
        return [(info[2], info[3]) for info in page.get_images(full=True)]
    return [(info["width"], info["height"]) for info in page.get_image_info()]
