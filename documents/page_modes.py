"""Per page: text, image or both. Each page of a document goes to the model as its text,
as its image, or as both, chosen automatically and changeable page by page.

Automatically (the "Pages as" mode "auto"): a page with a good text layer goes as text;
a scan or a page that is mostly figures goes as an image to a model that sees, and as its
(OCR) text to a text-only model. The modes "text" and "images" send every page one way.
Overrides such as "3=image, 5-7=both" then change single pages: the page field next to
the documents, `ask --page-mode`. Importing this module is free."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from documents.parts import DocumentPart
from engine.spec import VISION_HINT
from engine.types import EngineInputError

PageMode = Literal["text", "images", "auto"]
PAGE_MODES = ("auto", "text", "images")
Choice = Literal["text", "image", "both"]
CHOICES: tuple[Choice, ...] = ("text", "image", "both")
# Typed by a person: these bound what a pasted or scripted one costs.
MAX_OVERRIDE_CHARS = 1000
MAX_OVERRIDE_PAGES = 100_000
EXAMPLE = "3=image, 5-7=both"
_ENTRY = re.compile(r"(\d{1,9})(?:\s*[-–]\s*(\d{1,9}))?\s*=\s*([a-z]+)")


def parse_page_modes(text: str) -> dict[int, Choice]:
    """ "3=image, 5-7=both" -> {3: "image", 5: "both", 6: "both", 7: "both"}; "" -> {}.
    Raises EngineInputError with one line on anything else (a later entry for the same
    page wins, as a person correcting themselves means)."""
    if len(text) > MAX_OVERRIDE_CHARS:
        raise EngineInputError(
            f"the page modes are {len(text):,} characters; the limit is {MAX_OVERRIDE_CHARS:,}"
        )
    spans: list[tuple[int, int, Choice]] = []
    for entry in filter(None, (e.strip() for e in re.split(r"[,;]", text.lower()))):
        match = _ENTRY.fullmatch(entry)
        if not match:
            raise EngineInputError(f"page mode {_shown(entry)} is not like {EXAMPLE}")
        first, last, choice = int(match[1]), int(match[2] or match[1]), _choice(match[3])
        if first < 1 or last < first:
            raise EngineInputError(f"page mode {_shown(entry)}: the pages are backwards or start below 1")
        spans.append((first, last, choice))
    if sum(last - first + 1 for first, last, _ in spans) > MAX_OVERRIDE_PAGES:
        raise EngineInputError(f"the page modes name more than {MAX_OVERRIDE_PAGES:,} pages")
    return {n: choice for first, last, choice in spans for n in range(first, last + 1)}


def _choice(word: str) -> Choice:
    word = {"images": "image", "img": "image", "txt": "text"}.get(word, word)
    if word not in CHOICES:
        raise EngineInputError(f"page mode {word!r} is not one of text, image, both (like {EXAMPLE})")
    return word  # type: ignore[return-value]


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40] + "…")


def check_overrides(overrides: Mapping[int, Choice], name: str, total: int, vision: bool) -> None:
    """One line for an override this document or model cannot follow."""
    beyond = [n for n in overrides if n > total]
    if beyond:
        raise EngineInputError(f"page modes: {name} has {total:,} pages; no page {min(beyond):,}")
    seen = sorted(n for n, choice in overrides.items() if choice != "text")
    if seen and not vision:
        raise EngineInputError(
            f"page modes: page {seen[0]} as {overrides[seen[0]]} needs a model that sees; {VISION_HINT}"
        )


def automatic(page, mode: PageMode, vision: bool) -> Choice:
    """How a page goes without an override: by the mode, and for "auto" by what the page
    is (a scan or a figure page: an image to a model that sees, else its OCR text)."""
    if mode == "images":
        return "image"
    if mode == "auto" and vision and page.needs_vision:
        return "image"
    return "text"


def choose_pages(
    doc: DocumentPart,
    pages: Sequence,
    mode: PageMode,
    vision: bool,
    wanted: set[int] | None = None,
    overrides: Mapping[int, Choice] | None = None,
) -> DocumentPart:
    """Which pages go as text, as images, or both. A page chosen as text that has none
    is left out; a text-only model gets a clear error, not an empty prompt, when nothing
    readable is left."""
    overrides = overrides or {}
    check_overrides(overrides, doc.name, doc.total_pages, vision)
    chosen = [p for p in pages if wanted is None or p.number in wanted]
    choices = {p.number: overrides.get(p.number) or automatic(p, mode, vision) for p in chosen}
    as_image = [n for n, choice in choices.items() if choice != "text"]
    if as_image and not vision:
        raise EngineInputError(f"pages as images need a model that sees; {VISION_HINT}, or use PDF mode text")
    as_text = [p.number for p in chosen if choices[p.number] != "image" and p.text.strip()]
    if not as_text and not as_image:
        what = "has no text on those pages" if chosen else "has no such pages"
        hint = " (scanned pages need a vision model)" if not vision else ""
        raise EngineInputError(f"{doc.name} {what}{hint}")
    return replace(doc, text_pages=tuple(as_text), image_pages=tuple(as_image))


def choices_of(doc: DocumentPart) -> dict[Choice, list[int]]:
    """The document's pages by how they go: {"text": [...], "image": [...], "both": [...]}."""
    text, image = set(doc.text_pages), set(doc.image_pages)
    return {
        "text": sorted(text - image),
        "image": sorted(image - text),
        "both": sorted(text & image),
    }
