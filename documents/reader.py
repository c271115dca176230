"""Read documents into per-page text, and render pages as images sized for Llama 4.

Everything is judged from the bytes, never from the file name: an extension can lie,
a download can be cut short, a PDF can be encrypted or declare a 100k x 100k pixel
image. Each of those becomes a one-line DocumentError, never a traceback.

PyMuPDF does the reading (PDF, XPS, EPUB, MOBI, FB2, CBZ, SVG); plain text and
Markdown are paged here. MuPDF runs in worker processes (documents/workers.py, the
operations in documents/mupdf_pages.py): PyMuPDF is not thread-safe, and one user's
long ingest must not hold another's page render. Importing this module is free."""

from __future__ import annotations

import hashlib
import threading
import zipfile
import zlib
from dataclasses import dataclass

from documents.bounds import ArchiveError, check_declared, read_small
from documents.pages import (
    DEFAULT_DPI,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE_PX,
    DocumentError,
    IngestCancelled,
    PageText,
    PasswordRequired,
    ProgressFn,
    WrongPassword,
    check_page_count,
    render_size,
)
from engine.types import ImagePart

# The errors and the page measure live in documents/pages.py (the worker processes use
# them too); callers keep importing them from here.
__all__ = [
    "DOCUMENT_EXTENSIONS",
    "DocumentError",
    "IngestCancelled",
    "PageText",
    "ParsedDocument",
    "PasswordRequired",
    "WrongPassword",
    "decrypted_pdf",
    "parse_document",
    "render_page",
    "render_size",
    "sniff_kind",
]

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
    ".tif",
    ".tiff",
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
    "image": "an image",
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

FIGURE_FRACTION = 0.5  # images/drawings covering more of the page than this need vision
# Vector drawings are only measured on pages with little text: the measurement costs as
# much as the text extraction itself, and a page this full of text reads fine as text.
FIGURE_CHECK_MAX_CHARS = 1200
TEXT_PAGE_CHARS = 3000  # a text file is cut into pages of about this size, at line ends
COVERAGE_GRID = 32  # cells per side when measuring the union of image/drawing boxes
HAIRLINE_PT = 3  # drawings thinner than this are rules and borders, not figures


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
COMIC_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def sniff_kind(data: bytes, name: str) -> str:
    """The document kind the bytes hold, or a DocumentError saying what they are."""
    if not data:
        raise DocumentError(f"{name} is empty (0 bytes)")
    kind, looks_like = _kind_from_bytes(data, name)
    claimed = KIND_BY_EXTENSION.get(_extension(name))
    if kind == "image" and claimed is not None:  # a PNG named report.pdf: say so
        kind = None
    if kind is not None:
        return kind
    if looks_like == DAMAGED_ZIP:  # an EPUB, CBZ or XPS cut short lands here
        raise DocumentError(f"{name} is damaged or truncated (its ZIP container is broken)")
    if claimed is not None:
        raise DocumentError(f"{name} is not {KIND_LABEL[claimed]}: its bytes look like {looks_like}")
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
    # An image is a document of its frames (a scan, a photo of a page, a multi-page
    # TIFF): documents/image_pages.py turns it into pages.
    for signature, label in IMAGE_SIGNATURES:
        if data.startswith(signature):
            return "image", f"{label} image"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image", "WEBP image"
    for signature, label in OTHER_SIGNATURES:
        if data.startswith(signature):
            return None, label
    text = _utf8_text(data)
    if text is None:
        from documents.image_pages import image_format

        found = image_format(data)  # formats without a fixed signature: TGA, AVIF, ...
        return ("image", f"{found} image") if found else (None, "binary data")
    start = text[:4096].lstrip().lower()
    if start.startswith("<?xml") or start.startswith("<"):
        if "<fictionbook" in start:
            return "fb2", ""
        if "<svg" in start:
            return "svg", ""
    return "text", ""


def _zip_kind(data: bytes, name: str) -> tuple[str | None, str]:
    # Bounds first (bounds.py): the entry count and declared sizes come from the
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


def _mime(kind: str, name: str, data: bytes = b"") -> str:
    if kind == "text" and _extension(name) in (".md", ".markdown"):
        return "text/markdown"
    if kind == "image":
        from documents.image_pages import image_mime

        return image_mime(data)
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
    ocr: bool = True,
) -> ParsedDocument:
    """Every page's text, page numbers from 1, and which pages need to be seen. `ocr`:
    pages without a text layer are read by OCR (documents/ocr.py, as configured there)."""
    kind = sniff_kind(data, name)
    if kind == "text":
        pages = _text_pages(data, name, max_pages)
        if progress is not None:
            progress(1.0, f"reading {name}: page {len(pages):,} of {len(pages):,}")
    else:
        from documents import ocr as page_ocr

        settings = page_ocr.current() if ocr else None
        args = (data, name, kind, password, max_pages, settings)
        pages = _in_worker("read_pages", name, args, progress, cancel)
        if cancel is not None and cancel.is_set():  # Stop came as the last page was read
            raise IngestCancelled(f"reading {name} was cancelled")
    return ParsedDocument(hashlib.sha256(data).hexdigest(), name, kind, _mime(kind, name, data), pages)


def pdf_page_count(data: bytes, name: str) -> int | None:
    """How many pages a PDF has (its page tree only, in a document worker); None when
    it is locked. DocumentError (one line) when it cannot be opened."""
    return _in_worker("count_pages", name, (data, name))


def _in_worker(operation: str, name: str, args: tuple, progress=None, cancel=None, key: str | None = None):
    """Run a MuPDF operation (documents/mupdf_pages.py) in the worker pool, or here,
    one document at a time, when the pool is off."""
    from documents import workers

    pool = workers.shared()
    if pool is None:
        from documents.mupdf_pages import run_here

        return run_here(operation, args, progress, cancel)
    try:
        return pool.run(operation, args, progress, cancel, key)
    except workers.WorkerFailed as exc:
        raise DocumentError(f"{name} cannot be read: {exc}") from None


def _text_pages(data: bytes, name: str, max_pages: int) -> tuple[PageText, ...]:
    text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentError(f"{name} has no text")
    chunks = list(_split_text(text, TEXT_PAGE_CHARS))
    check_page_count(len(chunks), name, max_pages)
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


def decrypted_pdf(data: bytes, password: str | None, name: str = "document") -> bytes:
    """An encrypted PDF saved without its password, so its pages can be drawn later
    without asking again; any other document comes back as it is."""
    kind = sniff_kind(data, name)
    if kind != "pdf":
        return data
    unlocked = _in_worker("decrypt", name, (data, name, password))
    return data if unlocked is None else unlocked


# --- pages as images ----------------------------------------------------------------


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
    # The key lets a worker keep the document open for its next page.
    digest = hashlib.sha256(data)
    digest.update(b"\0" + (password or "").encode() + b"\0" + str(max_pixels).encode())
    args = (data, number, name, kind, password, dpi, max_side_px, max_pixels)
    return _in_worker("render", name, args, key=digest.hexdigest())
