"""Reading uploads into the store, and stored documents as the engine's page source:
page text and bm25 rankings from the store, page images rendered on demand from the
stored bytes (and kept a while: every turn of a chat about a scan sends them again)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

from documents.page_modes import Choice, PageMode, choose_pages
from documents.parts import DocumentPart
from engine.types import EngineInputError, ImagePart

from .documents import PageRow
from .store import Store

CACHED_PAGE_IMAGES = 64
CACHED_DOCUMENTS = 8


# Sent as images; a TIFF (often many pages) and any other image attached as a
# document is read as one, its frames the pages (OCR'd).
IMAGE_EXTENSIONS = (
    *(".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".avif", ".tga", ".ico", ".qoi"),
    *(".jp2", ".j2k", ".ppm", ".pgm", ".pbm", ".pnm", ".dib", ".pcx", ".sgi", ".psd"),
)


def is_document(path: str) -> bool:
    """Anything not named like an image is read as a document; each reader then checks
    the bytes and says when the name lies or the type is not one it reads."""
    return Path(path).suffix.lower() not in IMAGE_EXTENSIONS


def read_documents(
    store: Store,
    paths: list[str],
    *,
    mode: PageMode,
    vision: bool,
    password: str | None,
    max_pages: int,
    progress=None,
    cancel: threading.Event | None = None,
    overrides: Mapping[int, Choice] | None = None,
) -> list[DocumentPart]:
    """Each file parsed into the store once (by sha256), as a part with every page the
    mode sends (`overrides`: pages sent as text, image or both whatever the mode); the
    context budget later picks which of them fit."""
    parts = []
    for index, path in enumerate(paths):
        file = Path(path)
        if not file.is_file():
            raise EngineInputError(f"file not found: {file}")

        def report(fraction: float, what: str, index=index) -> None:
            if progress:
                progress((index + fraction) / len(paths), what)

        row = store.ingest_document(
            file.read_bytes(),
            file.name,
            password=password or None,
            max_pages=max_pages,
            progress=report,
            cancel=cancel,
        )
        whole = DocumentPart(row.sha256, row.name, row.pages)
        pages = store.document_pages(row.sha256)
        parts.append(choose_pages(whole, pages, mode, vision, overrides=overrides))
    return parts


class DocumentLibrary:
    def __init__(
        self, store: Store, *, dpi: int = 144, max_side_px: int = 1008, max_pixels: int = 40_000_000
    ):
        self.store = store
        self.dpi, self.max_side_px, self.max_pixels = dpi, max_side_px, max_pixels
        self._pages: OrderedDict[str, list[PageRow]] = OrderedDict()
        self._images: OrderedDict[tuple[str, int], ImagePart] = OrderedDict()
        self._lock = threading.Lock()

    def document_pages(self, sha256: str) -> list[PageRow]:
        # A sha256 names fixed bytes, so cached pages never go stale.
        return self._cached(self._pages, sha256, CACHED_DOCUMENTS, lambda: self.store.document_pages(sha256))

    def rank_pages(self, sha256: str, query: str) -> list[int]:
        return self.store.rank_pages(sha256, query)

    def page_image(self, sha256: str, number: int) -> ImagePart:
        return self._cached(
            self._images, (sha256, number), CACHED_PAGE_IMAGES, lambda: self._render(sha256, number)
        )

    def page_image_size(self, sha256: str, number: int) -> tuple[int, int] | None:
        """(width, height) in pixels page_image will have, from the page size stored at
        ingest: a page is costed without drawing it. None when the size is unknown."""
        from documents.reader import render_size

        pages = self.document_pages(sha256)  # numbered 1..n, in order
        page = pages[number - 1] if 0 < number <= len(pages) else None
        if page is None or page.number != number or page.width <= 0 or page.height <= 0:
            return None
        return render_size(page.width, page.height, self.dpi, self.max_side_px, self.max_pixels)

    def _render(self, sha256: str, number: int) -> ImagePart:
        from documents.reader import render_page

        name = self.store.document(sha256).name
        return render_page(
            self.store.blobs.read(sha256),
            number,
            name=name,
            dpi=self.dpi,
            max_side_px=self.max_side_px,
            max_pixels=self.max_pixels,
        )

    def _cached(self, cache: OrderedDict, key, size: int, make):
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = make()
        with self._lock:
            cache[key] = value
            while len(cache) > size:
                cache.popitem(last=False)
        return value
