"""What reading a document produces and how its pages are measured, shared by the
reader (documents/reader.py) and the MuPDF operations in the worker processes
(documents/mupdf_pages.py): the errors, a page's text and size, the page-count check,
and the pixel size a page renders at. Importing this module is free."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.image_plan import LLAMA_CPP, TILE, image_tokens
from errors import Cancelled, UserError

MIN_TEXT_CHARS = 80  # fewer non-space characters than a short paragraph: a scan or a figure
# Llama 4 vision as llama.cpp's mtmd runs it (clip.cpp, PROJECTOR_TYPE_LLAMA4).
DEFAULT_DPI = 144
LETTER_PT = (612.0, 792.0)
DEFAULT_MAX_SIDE_PX = 4 * TILE
DEFAULT_MAX_PIXELS = 40_000_000

ProgressFn = Callable[[float, str], None]


class DocumentError(UserError):
    """A document that cannot be read; the message is one line for the UI and CLI."""


class PasswordRequired(DocumentError):
    """The document is encrypted and no password was given."""


class WrongPassword(DocumentError):
    """The given password does not open the document."""


class IngestCancelled(Cancelled, DocumentError):
    """The user cancelled reading the document."""


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based
    text: str
    needs_vision: bool  # scanned or mostly figures: send it as an image to a vision model
    image_fraction: float  # share of the page area under images (0..1)
    width: float = 0.0  # page size in points (1/72 in); 0 for text files
    height: float = 0.0
    ocr: bool = False  # the text was read off the page image (documents/ocr.py)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def has_text(self) -> bool:
        """Real text: a vision page counts only when it also carries a paragraph or more."""
        visible = visible_chars(self.text)
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


ZIP_KINDS = ("epub", "cbz", "xps")


def check_page_count(count: int, name: str, max_pages: int) -> None:
    if count == 0:
        raise DocumentError(f"{name} has no pages")
    if count > max_pages:
        raise DocumentError(f"{name} has {count:,} pages; the limit is {max_pages:,} (L4P_MAX_DOC_PAGES)")


# Every character str.isspace() accepts (all lie below U+3001).
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


def visible_chars(text: str) -> int:
    # str.count runs in C over the text once per space character: several times faster
    # than splitting, and a Python loop per character costs as much as the extraction.
    return len(text) - sum(text.count(c) for c in WHITESPACE if c in text)


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
    zoom = zoom_for(width_pt, height_pt, dpi, max_side_px, max_pixels)
    return pixels(width_pt * zoom), pixels(height_pt * zoom)


def pixels(length: float) -> int:
    # MuPDF rounds a pixmap's edges outwards, forgiving 0.001 px of float noise.
    return max(1, math.ceil(length - 0.001))


def zoom_for(width_pt: float, height_pt: float, dpi: int, max_side_px: int, max_pixels: int) -> float:
    zoom = min(dpi / 72, (max_side_px - 0.002) / max(width_pt, height_pt))
    # Largest zoom whose outward-rounded pixmap, (w*z + 1) * (h*z + 1) at worst, fits.
    area, perimeter = width_pt * height_pt, width_pt + height_pt
    bound = (-perimeter + math.sqrt(perimeter**2 + 4 * area * (max_pixels - 1))) / (2 * area)
    return min(zoom, bound)
