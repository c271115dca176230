"""One request's budget, the same for every route (the page, /v1, `ask`, `compare`,
`sessions import`): its text characters all together, its parts, its images (how
many, and the pixels each header declares, alone and all together), and whether the
model can see images at all. Checked before anything is stored or any image decoded.

Each front end used to bound only what it thought of: 12 parts of 999k characters
were stored before being refused, and 100 GIFs of 6320x6320 (30 KB each) were all
decoded, over a minute, before "this model cannot see images". The error is one line
that names the figure and the limit (and the flag that sets it)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from engine.types import EngineInputError

HEADER_BYTES = 64 * 1024  # enough of any accepted format's header to read its size
# No tokenizer puts more characters than this in one token on average, so a text over
# n_ctx x this can never fit the context: refused before it is tokenized.
CHARS_PER_TOKEN_CEILING = 32

# A source of one image: its bytes (or their first HEADER_BYTES), a file path, or the
# (width, height) its header was already read for.
ImageSource = bytes | str | os.PathLike | tuple[int, int]


@dataclass(frozen=True)
class RequestBudget:
    """The limits; `RequestBudget.of(settings, spec)` reads them from the settings
    (config/settings.py, RequestSettings) and the model's own limits. Each `*_by` names
    what set its limit, for the refusal."""

    max_chars: int = 2_000_000
    max_parts: int = 500
    max_images: int = 20
    max_image_pixels: int = 40_000_000
    max_pixels: int = 200_000_000
    chars_by: str = "--max-request-chars"
    images_by: str = "--max-request-images"

    @classmethod
    def of(cls, settings, spec=None) -> RequestBudget:
        """With the model's `spec` (an engine.spec.ModelSpec), the tighter of the
        settings and the model: the images it takes per request, and the text its
        context could ever hold."""
        budget = cls(
            max_chars=settings.max_request_chars,
            max_parts=settings.max_request_parts,
            max_images=settings.max_request_images,
            max_image_pixels=settings.max_image_pixels,
            max_pixels=settings.max_request_pixels,
        )
        if spec is None:
            return budget
        context_chars = spec.n_ctx * CHARS_PER_TOKEN_CEILING
        if context_chars < budget.max_chars:
            budget = replace(budget, max_chars=context_chars, chars_by=f"{spec.n_ctx:,}-token context")
        if spec.max_images is not None and spec.max_images < budget.max_images:
            budget = replace(budget, max_images=spec.max_images, images_by=f"{spec.label}'s limit")
        return budget


def check_request(
    budget: RequestBudget,
    texts: Sequence[str],
    images: Sequence[ImageSource] = (),
    *,
    parts: int | None = None,
    vision: bool = True,
    label: str = "this model",
    hint: str = "",
) -> int:
    """Raises EngineInputError (one line) for the first limit the request passes;
    returns the pixels its images declare. Images are not opened for a model that
    cannot see them, and only their headers are read otherwise."""
    chars = sum(len(text) for text in texts)
    _limit(chars, budget.max_chars, "request has {:,} characters", budget.chars_by)
    count = len(texts) + len(images) if parts is None else parts
    _limit(count, budget.max_parts, "request has {:,} parts", "--max-request-parts")
    if not images:
        return 0
    if not vision:
        raise EngineInputError(f"{label} cannot see images" + (f"; {hint}" if hint else ""))
    _limit(len(images), budget.max_images, "request has {:,} images", budget.images_by)
    total = 0
    for number, source in enumerate(images, 1):
        size = declared_size(source)
        if size is None:
            raise EngineInputError(f"image {number} declares too many pixels to open safely")
        width, height = size
        pixels = width * height
        if pixels > budget.max_image_pixels:
            raise EngineInputError(
                f"image {number} is {width:,}x{height:,} = {pixels:,} pixels; "
                f"this server takes {budget.max_image_pixels:,} per image (L4P_MAX_IMAGE_PIXELS)"
            )
        total += pixels
    _limit(total, budget.max_pixels, "request's images declare {:,} pixels", "--max-request-pixels")
    return total


def _limit(figure: int, limit: int, what: str, flag: str) -> None:
    if figure > limit:
        raise EngineInputError(f"{what.format(figure)}; this server takes {limit:,} ({flag})")


def declared_size(source: ImageSource) -> tuple[int, int] | None:
    """(width, height) as the image's header declares them, reading the header only
    (Pillow opens lazily: nothing is decoded until `.load()`); None for a header past
    Pillow's bomb limit; (0, 0) for anything unreadable here: the full check, later,
    refuses it with its own line."""
    from PIL import Image

    if isinstance(source, tuple):
        return source
    opened = io.BytesIO(source[:HEADER_BYTES]) if isinstance(source, bytes) else Path(source)
    try:
        with Image.open(opened) as probe:
            return probe.size
    except Image.DecompressionBombError:
        return None
    except (ValueError, OSError, SyntaxError):
        return (0, 0)
