"""What a chat holds, apart from what a model evaluates.

A `ChatMessage` (the store's, the page's, the API's) holds text, images and documents
in order; a document stays one `DocumentPart` (its pages chosen, its bytes in the
store). A model takes an `engine.types.Message` of text and images only:
`documents.context.expand_documents` is the one conversion, turning each document into
the text and image parts of the pages chosen for it. Citations (`[p. N]` in an
answer's text) point into the documents of the question they answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.types import ImagePart, Role, TextPart


@dataclass(frozen=True)
class DocumentPart:
    """A stored document: which pages went as text and which as page images. The text
    and bytes live in the session store (by sha256)."""

    sha256: str
    name: str
    total_pages: int
    text_pages: tuple[int, ...] = ()
    image_pages: tuple[int, ...] = ()

    @property
    def pages(self) -> tuple[int, ...]:
        return tuple(sorted({*self.text_pages, *self.image_pages}))


# What a chat message holds; an engine Message holds only the first two.
ChatPart = TextPart | ImagePart | DocumentPart

# "[p. 3]", "[pp. 3-5]": how answers cite the pages they were given.
CITATION = re.compile(r"\[p(?:p)?\.\s*(\d+)(?:\s*[-–]\s*(\d+))?\]")
MAX_CITED_RANGE = 1000  # "[pp. 1-99999999]" in model output names no real range


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat, in the order its parts were written: Llama 4 is
    early-fusion, so "image 1" and "page 3" mean where they sit in the text."""

    role: Role
    parts: tuple[ChatPart, ...]

    @classmethod
    def text(cls, role: Role, text: str) -> ChatMessage:
        return cls(role, (TextPart(text),))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

    @property
    def documents(self) -> tuple[DocumentPart, ...]:
        return tuple(p for p in self.parts if isinstance(p, DocumentPart))

    @property
    def plain_text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def citations(self) -> tuple[int, ...]:
        """The page numbers this message's text cites, in order, each once."""
        pages: dict[int, None] = {}
        for match in CITATION.finditer(self.plain_text):
            first = int(match[1])
            last = int(match[2] or first)
            pages.update(dict.fromkeys(range(first, min(last, first + MAX_CITED_RANGE) + 1)))
        return tuple(pages)
