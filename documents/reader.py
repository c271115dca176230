"""Read documents into per-page text, and render pages as images sized for Llama 4.

Everything is judged from the bytes, never from the file name: an extension can lie,
a download can be cut short, a PDF can be encrypted or declare a 100k x 100k pixel
image. Each of those becomes a one-line DocumentError, never a traceback.

PyMuPDF does the reading (PDF, XPS, EPUB, MOBI, FB2, CBZ, SVG); plain text and
Markdown are paged here. PyMuPDF is imported lazily: importing this module is free."""

from __future__ import annotations

import hashlib
import math
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from documents.archives import ArchiveError, check_declared, check_inflated, read_small
from engine.image_plan import LLAMA_CPP, TILE, image_tokens
from engine.types import EngineInputError, ImagePart

DOCUMENT_EXTENSIONS: tuple[str, ...] = (
    ".pdf",
    ".xps",
    ".oxps",
    ".epub",
    ".mobi",
    ".fb2",
    ".cbz",
    ".svg",
    ".txt",
    ".md",
    ".markdown",
)
KIND_BY_EXTENSION = {ext: ext[1:] for ext in DOCUMENT_EXTENSIONS[:8]} | {
    ".oxps": "xps",
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
}
KIND_LABEL = {
    "pdf": "a PDF",
    "xps": "an XPS document",
    "epub": "an EPUB book",
    "mobi": "a MOBI book",
    "fb2": "a FictionBook",
    "cbz": "a comic book (CBZ)",
    "svg": "an SVG drawing",
    "text": "a text file",
}
MIME_BY_KIND = {
    "pdf": "application/pdf",
    "xps": "application/oxps",
    "epub": "application/epub+zip",
    "mobi": "application/x-mobipocket-ebook",
    "fb2": "application/x-fictionbook+xml",
    "cbz": "application/vnd.comicbook+zip",
    "svg": "image/svg+xml",
    "text": "text/plain",
}

MIN_TEXT_CHARS = 80  # fewer non-space characters than a short paragraph: a scan or a figure
FIGURE_FRACTION = 0.5  # images/drawings covering more of the page than this need vision
# Vector drawings are only measured on pages with little text: the measurement costs as
# much as the text extraction itself, and a page this full of text reads fine as text.
FIGURE_CHECK_MAX_CHARS = 1200
TEXT_PAGE_CHARS = 3000  # a text file is cut into pages of about this size, at line ends
COVERAGE_GRID = 32  # cells per side when measuring the union of image/drawing boxes
HAIRLINE_PT = 3  # drawings thinner than this are rules and borders, not figures

# Llama 4 vision as llama.cpp's mtmd runs it (clip.cpp, PROJECTOR_TYPE_LLAMA4).
DEFAULT_DPI = 144
LETTER_PT = (612.0, 792.0)
DEFAULT_MAX_SIDE_PX = 4 * TILE
DEFAULT_MAX_PIXELS = 40_000_000

ProgressFn = Callable[[float, str], None]


class DocumentError(EngineInputError):
    """A document that cannot be read; the message is one line for the UI and CLI."""


class PasswordRequired(DocumentError):
    """The document is encrypted and no password was given."""


class WrongPassword(DocumentError):
    """The given password does not open the document."""


class IngestCancelled(DocumentError):
    """The user cancelled reading the document."""


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based
    text: str
    needs_vision: bool  # scanned or mostly figures: send it as an image to a vision model
    image_fraction: float  # share of the page area under images (0..1)
    width: float = 0.0  # page size in points (1/72 in); 0 for text files
    height: float = 0.0

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def has_text(self) -> bool:
        """Real text: a vision page counts only when it also carries a paragraph or more."""
        visible = _visible_chars(self.text)
        return visible >= MIN_TEXT_CHARS or (visible > 0 and not self.needs_vision)

    @property
    def text_tokens(self) -> int:
        return math.ceil(len(self.text) / 4)  # ~4 characters a token for English prose

    @property
    def image_tokens(self) -> int:
        """What this page costs Llama 4 on llama.cpp rendered at the default DPI and size
        cap (a page of unknown size is costed as US Letter, so it never looks free)."""
        width, height = render_size(self.width or LETTER_PT[0], self.height or LETTER_PT[1])
        return image_tokens(width, height, LLAMA_CPP)


@dataclass(frozen=True)
class ParsedDocument:
    sha256: str
    name: str
    kind: str
    mime: str
    pages: tuple[PageText, ...]

    @property
    def pages_with_text(self) -> int:
        return sum(page.has_text for page in self.pages)

    @property
    def pages_needing_vision(self) -> int:
        return sum(page.needs_vision for page in self.pages)

    @property
    def chars(self) -> int:
        return sum(page.chars for page in self.pages)

    @property
    def estimated_tokens(self) -> int:
        """Text pages at ~chars/4, vision pages at their Llama 4 image cost."""
        return sum(page.image_tokens if page.needs_vision else page.text_tokens for page in self.pages)


# --- what the bytes are -------------------------------------------------------------

IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
OTHER_SIGNATURES = (
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old Microsoft Office file"),
    (b"ID3", "MP3 audio"),
    (b"OggS", "Ogg media"),
    (b"SQLite format 3\x00", "SQLite database"),
)
DAMAGED_ZIP = "a damaged ZIP archive"
ZIP_KINDS = ("epub", "cbz", "xps")
COMIC_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def sniff_kind(data: bytes, name: str) -> str:
    """The document kind the bytes hold, or a DocumentError saying what they are."""
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes)")
    kind, looks_like = _kind_from_bytes(data, name)
    if kind is not None:
        return kind
    if looks_like == DAMAGED_ZIP:  # an EPUB, CBZ or XPS cut short lands here
        raise DocumentError(f"{name} is damaged or truncated (its ZIP container is broken)")
    claimed = KIND_BY_EXTENSION.get(_extension(name))
    if claimed is not None:
        raise DocumentError(f"{name} is not {KIND_LABEL[claimed]}: its bytes look like {looks_like}")
    if looks_like.endswith(" image"):
        image_format = looks_like.removesuffix(" image")
        raise DocumentError(f"{name} is an image ({image_format}), attach it as an image")
    raise DocumentError(f"{name} is not a document this app can read (looks like {looks_like})")


def _kind_from_bytes(data: bytes, name: str) -> tuple[str | None, str]:
    """(kind, "") for a readable document, else (None, a description of the bytes)."""
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf", ""
    if data.startswith(b"PK\x03\x04"):
        return _zip_kind(data, name)
    if data[60:68] == b"BOOKMOBI":
        return "mobi", ""
    for signature, label in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return None, f"{label} image"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return None, "WEBP image"
    for signature, label in OTHER_SIGNATURES:
        if data.startswith(signature):
            return None, label
    text = _utf8_text(data)
    if text is None:
        return None, "binary data"
    start = text[:4096].lstrip().lower()
    if start.startswith("<?xml") or start.startswith("<"):
        if "<fictionbook" in start:
            return "fb2", ""
        if "<svg" in start:
            return "svg", ""
    return "text", ""


def _zip_kind(data: bytes, name: str) -> tuple[str | None, str]:
    # Bounds first (archives.py): the entry count and declared sizes come from the
    # central directory, and `mimetype` is read only when it declares a few bytes.
    try:
        entries = check_declared(data, name)
        names = [entry.filename for entry in entries]
        mimetype = read_small(data, entries, "mimetype")
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError, zlib.error):
        return None, DAMAGED_ZIP
    if mimetype is not None and mimetype.strip() == b"application/epub+zip":
        return "epub", ""
    lowered = [n.lower() for n in names]
    if "[content_types].xml" in lowered:
        if any(n.endswith(".fdseq") for n in lowered):
            return "xps", ""
        if any(n.startswith("word/") for n in lowered):
            return None, "Word document (DOCX)"
        if any(n.startswith("xl/") for n in lowered):
            return None, "Excel workbook (XLSX)"
        if any(n.startswith("ppt/") for n in lowered):
            return None, "PowerPoint deck (PPTX)"
    files = [n for n in lowered if not n.endswith("/")]
    if files and all(n.endswith(COMIC_IMAGE_EXTENSIONS) for n in files):
        return "cbz", ""
    return None, "ZIP archive"


def _utf8_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def _mime(kind: str, name: str) -> str:
    if kind == "text" and _extension(name) in (".md", ".markdown"):
        return "text/markdown"
    return MIME_BY_KIND[kind]


# --- reading ------------------------------------------------------------------------


def parse_document(
    data: bytes,
    name: str,
    *,
    password: str | None = None,
    max_pages: int = 2000,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ParsedDocument:
    """Every page's text, page numbers from 1, and which pages need to be seen."""
    kind = sniff_kind(data, name)
    if kind == "text":
        pages = _text_pages(data, name, max_pages)
        if progress is not None:
            progress(1.0, f"reading {name}: page {len(pages):,} of {len(pages):,}")
    else:
        if kind in ZIP_KINDS:  # sniffing checked the declared sizes; now the real ones
            check_inflated(data, name, check_declared(data, name))
        with _OpenDocument(data, name, kind, password) as doc:
            _check_page_count(doc.page_count, name, max_pages)
            pages = _read_pages(doc, name, progress, cancel)
    return ParsedDocument(hashlib.sha256(data).hexdigest(), name, kind, _mime(kind, name), pages)


def _check_page_count(count: int, name: str, max_pages: int) -> None:
    if count == 0:
        raise DocumentError(f"{name} has no pages")
    if count > max_pages:
        raise DocumentError(f"{name} has {count:,} pages; the limit is {max_pages:,} (L4P_MAX_DOC_PAGES)")


def _read_pages(doc, name: str, progress: ProgressFn | None, cancel: threading.Event | None):
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


def _page_text(doc, index: int, name: str) -> PageText:
    try:
        page = doc.load_page(index)
        text = page.get_text("text")
        rect = page.rect
        visible = _visible_chars(text)
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


# Every character str.isspace() accepts (all lie below U+3001).
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def _visible_chars(text: str) -> int:
    # str.count runs in C over the text once per space character: several times faster
    # than splitting, and a Python loop per character costs as much as the extraction.
    return len(text) - sum(text.count(c) for c in WHITESPACE if c in text)


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


def _text_pages(data: bytes, name: str, max_pages: int) -> tuple[PageText, ...]:
    text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentError(f"{name} has no text")
    chunks = list(_split_text(text, TEXT_PAGE_CHARS))
    _check_page_count(len(chunks), name, max_pages)
    return tuple(PageText(n, chunk, False, 0.0) for n, chunk in enumerate(chunks, start=1))


def _split_text(text: str, size: int):
    """Pages of at most `size` characters, cut after a newline where one is in reach."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            newline = text.rfind("\n", start, end)
            if newline > start:
                end = newline + 1
        yield text[start:end]
        start = end


class _OpenDocument:
    """A PyMuPDF document opened from bytes, authenticated, closed on exit."""

    def __init__(self, data: bytes, name: str, kind: str, password: str | None):
        self.data, self.name, self.kind, self.password = data, name, kind, password

    def __enter__(self):
        pymupdf = _pymupdf()
        # PyMuPDF is not thread-safe, and the app reads one upload while it renders
        # pages of another: one document open at a time.
        MUPDF_LOCK.acquire()
        try:
            self.doc = pymupdf.open(stream=self.data, filetype=self.kind)
        except Exception:  # FileDataError, RuntimeError: MuPDF gave up on the bytes
            MUPDF_LOCK.release()
            raise DocumentError(f"{self.name} is damaged or truncated (it cannot be opened)") from None
        try:
            self._check_intact()
            self._authenticate()
        except BaseException:
            self.__exit__()
            raise
        return self.doc

    def __exit__(self, *exc) -> None:
        try:
            self.doc.close()
        finally:
            MUPDF_LOCK.release()

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


MUPDF_LOCK = threading.RLock()


def _pymupdf():
    import pymupdf

    # MuPDF prints every repair and warning to stderr; the messages that matter are ours.
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def decrypted_pdf(data: bytes, password: str | None, name: str = "document") -> bytes:
    """An encrypted PDF saved without its password, so its pages can be drawn later
    without asking again; any other document comes back as it is."""
    kind = sniff_kind(data, name)
    if kind != "pdf":
        return data
    with _OpenDocument(data, name, kind, password) as doc:
        if not (doc.metadata or {}).get("encryption"):  # after authenticate, only metadata tells
            return data
        try:
            return doc.tobytes(encryption=_pymupdf().PDF_ENCRYPT_NONE, garbage=1)
        except Exception as exc:
            raise DocumentError(f"{name} is damaged or truncated (it cannot be unlocked)") from exc


# --- pages as images ----------------------------------------------------------------


def render_size(
    width_pt: float,
    height_pt: float,
    dpi: int = DEFAULT_DPI,
    max_side_px: int = DEFAULT_MAX_SIDE_PX,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Pixel size a page of this size in points renders at: dpi first, then scaled down
    so the longer side fits max_side_px and the area fits max_pixels."""
    if width_pt <= 0 or height_pt <= 0:
        return 0, 0
    zoom = _zoom(width_pt, height_pt, dpi, max_side_px, max_pixels)
    return _pixels(width_pt * zoom), _pixels(height_pt * zoom)


def _pixels(length: float) -> int:
    # MuPDF rounds a pixmap's edges outwards, forgiving 0.001 px of float noise.
    return max(1, math.ceil(length - 0.001))


def _zoom(width_pt: float, height_pt: float, dpi: int, max_side_px: int, max_pixels: int) -> float:
    zoom = min(dpi / 72, (max_side_px - 0.002) / max(width_pt, height_pt))
    # Largest zoom whose outward-rounded pixmap, (w*z + 1) * (h*z + 1) at worst, fits.
    area, perimeter = width_pt * height_pt, width_pt + height_pt
    bound = (-perimeter + math.sqrt(perimeter**2 + 4 * area * (max_pixels - 1))) / (2 * area)
    return min(zoom, bound)


def render_page(
    data: bytes,
    number: int,
    *,
    name: str = "document",
    password: str | None = None,
    dpi: int = DEFAULT_DPI,
    max_side_px: int = DEFAULT_MAX_SIDE_PX,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImagePart:
    """Page `number` (from 1) as a PNG sized for Llama 4's 336 px tiles."""
    kind = sniff_kind(data, name)
    if kind == "text":
        raise DocumentError(f"{name} is a text file; it has no page images")
    with _OpenDocument(data, name, kind, password) as doc:
        if not 1 <= number <= doc.page_count:
            raise DocumentError(f"{name} has no page {number} (it has {doc.page_count:,})")
        try:
            page = doc.load_page(number - 1)
            _refuse_huge_images(page, doc.is_pdf, name, number, max_pixels)
            rect = page.rect
            zoom = _zoom(rect.width, rect.height, dpi, max_side_px, max_pixels)
            pixmap = page.get_pixmap(matrix=_pymupdf().Matrix(zoom, zoom), alpha=False)
            png = pixmap.tobytes("png")
        except DocumentError:
            raise
        except Exception as exc:
            raise DocumentError(f"{name} is damaged or truncated (page {number} cannot be drawn)") from exc
    return ImagePart(png, "image/png", f"{name} p. {number}", pixmap.width, pixmap.height)


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
