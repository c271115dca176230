"""A question as the model gets it: documents read into the store (once per sha256),
then images where the text places them, then the text."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

from documents.page_modes import PageMode, parse_page_modes
from documents.parts import ChatMessage
from engine.budget import RequestBudget, check_request
from engine.decode_pool import decode_all
from engine.images import image_file_size, load_image_file
from engine.limits import check_text
from engine.spec import VISION_HINT
from engine.types import ImagePart, Part, TextPart
from sessions.library import DocumentLibrary, is_document, read_documents

from .turns import Turn

# Where the user writes <image>, the next attached image goes; otherwise images come
# first, then the text (Meta's recommended layout for Llama 4).
IMAGE_SLOT = re.compile(r"<image>", re.IGNORECASE)


def place_images(text: str, images: Sequence[ImagePart]) -> tuple[Part, ...]:
    pieces = IMAGE_SLOT.split(text)
    if len(pieces) == 1:
        return (*images, TextPart(text)) if text else tuple(images)
    parts: list[Part] = []
    queue = list(images)
    for index, piece in enumerate(pieces):
        if index > 0 and queue:
            parts.append(queue.pop(0))
        if piece:
            parts.append(TextPart(piece))
    return (*parts, *queue)


def read_question(
    library: DocumentLibrary,
    text: str,
    images: Sequence[str] = (),
    documents: Sequence[str] = (),
    *,
    mode: PageMode,
    vision: bool,
    password: str | None,
    max_pages: int,
    max_pixels: int,
    max_chars: int,
    label: str = "this model",
    hint: str = VISION_HINT,
    budget: RequestBudget | None = None,
    owner: str | None = None,
    progress=None,
    cancel: threading.Event | None = None,
    show_blob: Callable[[str], str] | None = None,
    page_modes: str = "",
) -> Turn:
    """The user's turn from its text, image files and document files. `vision` False
    refuses images. `show_blob` gives a stored document's display path (the page's
    blob URL) from its sha256. Raises EngineInputError with one line for any bad input, before
    anything is stored but the documents' own pages (kept once per sha256).

    The request's budget is checked first, from the images' headers only (a missing
    file or one that is no image is named first; nothing is decoded for a text-only
    model); then the images are decoded in the shared pool, fair between `owner`s
    (engine/decode_pool.py). `page_modes` ("3=image, 5-7=both") overrides how the
    documents' pages go."""
    check_text(text, max_chars)
    overrides = parse_page_modes(page_modes) if page_modes.strip() else None
    check_request(
        budget or RequestBudget(max_image_pixels=max_pixels),
        [text],
        [image_file_size(path) for path in images],
        parts=1 + len(images) + len(documents),
        vision=vision,
        label=label,
        hint=hint,
    )
    loaded = decode_all(owner, lambda path: load_image_file(path, max_pixels), list(images))
    parts = read_documents(
        library.store,
        [str(p) for p in documents],
        mode=mode,
        vision=vision,
        password=password,
        max_pages=max_pages,
        progress=progress,
        cancel=cancel,
        overrides=overrides,
    )
    show = show_blob or (lambda sha256: str(library.store.blob_path(sha256)))
    shown = [show(d.sha256) for d in parts]
    message = ChatMessage("user", (*parts, *place_images(text.strip(), loaded)))
    return Turn(message, files=[*shown, *map(str, images)])


def split_uploads(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """(images, documents) among uploaded files; each reader checks the bytes."""
    return [p for p in paths if not is_document(p)], [p for p in paths if is_document(p)]
