"""Bounds on what a document can make the reader allocate, judged before MuPDF sees it.

ZIP containers (EPUB, CBZ, XPS), before anything in them is inflated.

A few megabytes of ZIP can declare gigabytes: one entry of zeros (a 1000:1 ratio), a
hundred thousand empty entries (each costs the central directory's parser memory), or
a header that declares a small entry whose stream inflates far past it. MuPDF
allocates what the headers declare and Python's zipfile parses every entry, so the
limits are judged from the raw bytes first:

- `check_declared`: entry count from the end record, then the central directory's
  declared sizes. No inflating; cheap enough for every sniff.
- `check_inflated`: every entry inflated through a fixed window and counted, never
  kept, refused the moment it passes the size its header declares. Run once, when a
  document is read into the store.

Images embedded as data: URIs in an SVG, which MuPDF decodes whole as it opens the
drawing (images elsewhere are decoded only when a page is drawn, and render_page
judges them from their headers first): `check_data_uri_images`, and
`check_archived_svgs` for the SVG files inside a book."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zipfile
import zlib
from io import BytesIO

from errors import UserError

MAX_ENTRIES = 10_000  # an EPUB of many chapters and images, a CBZ of 2,000 pages
MAX_UNPACKED_BYTES = 1 << 30  # everything the archive declares, inflated
WINDOW = 1 << 20  # bytes inflated at a time while counting
MAX_SVG_BYTES = 64 << 20  # one drawing inside a book; read whole to look for data: images

END_RECORD = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_END_RECORD = b"PK\x06\x06"
LOCAL_HEADER = b"PK\x03\x04"
STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED


class ArchiveError(UserError):
    """A ZIP container over a bound, or one that lies about its sizes."""


def declared_entries(data: bytes) -> int | None:
    """Entries the end-of-central-directory record declares (zip64 included), or None
    when there is no readable end record (a damaged archive)."""
    at = data.rfind(END_RECORD, max(0, len(data) - 22 - 0xFFFF))
    if at < 0 or len(data) < at + 22:
        return None
    (count,) = struct.unpack_from("<H", data, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= 0 and data[locator : locator + 4] == ZIP64_LOCATOR:
        (record,) = struct.unpack_from("<Q", data, locator + 8)
        if data[record : record + 4] != ZIP64_END_RECORD or len(data) < record + 40:
            return None
        (count,) = struct.unpack_from("<Q", data, record + 32)
    return count


def check_declared(data: bytes, name: str) -> list[zipfile.ZipInfo]:
    """The archive's entries once their count and declared sizes are within bounds.
    Raises ArchiveError over a bound; zipfile.BadZipFile when the container is broken."""
    count = declared_entries(data)
    if count is None:
        raise zipfile.BadZipFile("no end record")
    if count > MAX_ENTRIES:
        raise ArchiveError(f"{name} holds {count:,} files; the limit for a document is {MAX_ENTRIES:,}")
    with zipfile.ZipFile(BytesIO(data)) as archive:
        entries = archive.infolist()
    declared = sum(entry.file_size for entry in entries)
    if declared > MAX_UNPACKED_BYTES:
        raise ArchiveError(
            f"{name} unpacks to {_size(declared)}, over the {_size(MAX_UNPACKED_BYTES)} limit for a document"
        )
    return entries


def read_small(
    data: bytes, entries: list[zipfile.ZipInfo], entry_name: str, limit: int = 256
) -> bytes | None:
    """An entry's bytes when it declares at most `limit` bytes (a `mimetype`), else None:
    sniffing never inflates more than that."""
    entry = next((e for e in entries if e.filename == entry_name), None)
    if entry is None or entry.file_size > limit:
        return None
    with zipfile.ZipFile(BytesIO(data)) as archive, archive.open(entry) as file:
        return file.read(limit + 1)[:limit]


def check_inflated(data: bytes, name: str, entries: list[zipfile.ZipInfo]) -> None:
    """Every entry really inflates to no more than it declares (and the declared sizes
    were bounded by check_declared), counted a window at a time."""
    view = memoryview(data)
    for entry in entries:
        start = _data_start(data, entry, name)
        packed = view[start : start + entry.compress_size]
        if entry.compress_type == STORED:
            real = len(packed)
        elif entry.compress_type == DEFLATED:
            real = _inflated_size(packed, entry.file_size)
        else:
            raise ArchiveError(f"{name}: {entry.filename} uses a compression this app does not read")
        if real > entry.file_size:
            raise ArchiveError(
                f"{name} is a ZIP bomb: {entry.filename} declares {_size(entry.file_size)} "
                "but inflates to more"
            )


def _data_start(data: bytes, entry: zipfile.ZipInfo, name: str) -> int:
    at = entry.header_offset
    if data[at : at + 4] != LOCAL_HEADER:
        raise ArchiveError(f"{name} is damaged or truncated (its ZIP container is broken)")
    name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
    return at + 30 + name_length + extra_length


def _inflated_size(packed: memoryview, declared: int) -> int:
    """Bytes the deflate stream yields, stopping once past `declared`."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        for offset in range(0, len(packed), WINDOW):
            pending = packed[offset : offset + WINDOW]
            while pending:
                total += len(inflater.decompress(pending, WINDOW))
                if total > declared:
                    return total
                pending = inflater.unconsumed_tail
        return total + len(inflater.flush())
    except zlib.error:
        return total  # a broken stream: MuPDF says so when it reads the entry


def _size(count: int) -> str:
    if count >= 1 << 30:
        return f"{count / (1 << 30):.1f} GiB"
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MiB"
    return f"{count:,} bytes"


DATA_URI = re.compile(rb"data:image/[\w.+-]+;base64,")
NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
HEADER_BASE64 = 96 * 1024  # base64 characters read per image: headers, EXIF and all


def check_data_uri_images(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse an embedded image declaring more than max_pixels, from its header alone."""
    for match in DATA_URI.finditer(data):
        head = NOT_BASE64.sub(b"", data[match.end() : match.end() + HEADER_BASE64])
        size = _declared_size(head[: len(head) // 4 * 4])
        if size is None or size[0] * size[1] > max_pixels:
            shown = "" if size is None else f" of {size[0]:,}x{size[1]:,} pixels"
            raise ArchiveError(f"{name} holds an image{shown}, over the {max_pixels:,} pixel limit")


def check_archived_svgs(data: bytes, name: str, entries: list[zipfile.ZipInfo], max_pixels: int) -> None:
    """The data: URI images of SVG files inside an EPUB or XPS (a chapter's picture),
    which MuPDF decodes whole when it draws the page that shows them."""
    with zipfile.ZipFile(BytesIO(data)) as archive:
        for entry in entries:
            if not entry.filename.lower().endswith(".svg"):
                continue
            if entry.file_size > MAX_SVG_BYTES:
                raise ArchiveError(
                    f"{name} holds an SVG of {_size(entry.file_size)} ({entry.filename}); "
                    f"the limit is {_size(MAX_SVG_BYTES)}"
                )
            check_data_uri_images(archive.read(entry), f"{name} ({entry.filename})", max_pixels)


def _declared_size(encoded: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header; None past Pillow's own bomb limit."""
    from PIL import Image

    try:
        with Image.open(BytesIO(base64.b64decode(encoded))) as image:
            return image.size
    except Image.DecompressionBombError:
        return None
    except (OSError, ValueError, binascii.Error):
        return 0, 0  # not an image Pillow reads from its start; MuPDF will say so
