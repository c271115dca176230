"""What the input's attachment chips say about each file before it is sent: its name,
its size, and its pages (a PDF, from its page tree) or pixels (an image, from its
header). Nothing is decoded or parsed here: the question reads the files when sent."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from documents.pages import DocumentError
from documents.reader import pdf_page_count, sniff_kind
from engine.images import image_file_size
from engine.types import EngineInputError
from sessions.library import is_document

# A PDF past this size is named and sized only: counting its pages would read it all.
MAX_COUNTED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    name: str
    size: int  # bytes
    detail: str  # "3 pages", "640×480 px", or why it cannot be read; "" when nothing to say


def describe_upload(path: str, max_bytes: int = MAX_COUNTED_BYTES) -> Attachment:
    """One uploaded file as its chip shows it. A file the question will refuse says
    why in one line; nothing here raises for a bad file."""
    try:
        stat = os.stat(path)
    except OSError:
        return Attachment(Path(path).name, 0, "no longer here: attach it again")
    return _described(path, stat.st_size, stat.st_mtime_ns, max_bytes)


@functools.lru_cache(maxsize=256)  # typing in the box asks again for the same files
def _described(path: str, size: int, _mtime_ns: int, max_bytes: int) -> Attachment:
    name = Path(path).name
    try:
        detail = _document_detail(path, name, size, max_bytes) if is_document(path) else _pixels(path)
    except (DocumentError, EngineInputError) as exc:
        detail = f"⚠️ {exc}"
    return Attachment(name, size, detail)


def _pixels(path: str) -> str:
    width, height = image_file_size(path)  # the header only
    return f"{width}×{height} px"


def _document_detail(path: str, name: str, size: int, max_bytes: int) -> str:
    if size > max_bytes or not name.lower().endswith(".pdf"):
        return ""
    data = Path(path).read_bytes()
    if sniff_kind(data, name) != "pdf":
        return ""
    pages = pdf_page_count(data, name)
    if pages is None:
        return "locked: needs its password"
    return f"{pages:,} page" + ("" if pages == 1 else "s")


def size_text(size: int) -> str:
    """Bytes as a person reads them: 812 B, 14.2 kB, 3.1 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
