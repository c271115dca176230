"""A document at its place in a chat message. The engine never sees one: before a
model gets the conversation, `documents.context.expand_documents` turns each into the
text and image parts of the pages chosen for it."""

from __future__ import annotations

from dataclasses import dataclass

from engine.types import ImagePart, Message, TextPart


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


# What a chat message (the store's, the page's) holds; an engine Message holds only
# the first two.
ChatPart = TextPart | ImagePart | DocumentPart


def documents_of(message: Message) -> tuple[DocumentPart, ...]:
    return tuple(p for p in message.parts if isinstance(p, DocumentPart))
