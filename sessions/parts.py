"""One codec for message parts: the store's `parts` column and the JSON export hold the
same records, one per part in its order: `{"text": ...}`, `{"image": SHA256, "name": ...}`
(the bytes live in the blob store, or in the export's attachments), `{"document": SHA256,
"name", "total_pages", "text_pages", "image_pages"}` (a stored document by reference,
with the pages this message sent). Everything that reads or shows parts goes through
here, so a new part kind is added in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from documents.parts import ChatPart, DocumentPart
from engine.types import ImagePart, TextPart

from .blobs import sha256_of

Record = dict[str, Any]
# (position in the message, its record) -> the image with its bytes
ImageLoader = Callable[[int, Record], ImagePart]


def encode_part(part: ChatPart) -> Record:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, DocumentPart):
        return {
            "document": part.sha256,
            "name": part.name,
            "total_pages": part.total_pages,
            "text_pages": list(part.text_pages),
            "image_pages": list(part.image_pages),
        }
    if isinstance(part, ImagePart):
        return {"image": sha256_of(part.data), "name": part.name}
    raise TypeError(f"not a message part: {type(part).__name__}")


def encode_parts(parts: Iterable[ChatPart]) -> tuple[str, str]:
    """(text, parts JSON): `text` is what full-text search indexes."""
    parts = tuple(parts)
    text = "\n".join(p.text for p in parts if isinstance(p, TextPart))
    return text, json.dumps([encode_part(p) for p in parts], ensure_ascii=False)


def part_kind(record: Record) -> str:
    """ "text", "image" or "document"; ValueError for anything else."""
    for kind in ("text", "image", "document"):
        if kind in record:
            return kind
    raise ValueError(f"unknown message part with keys {sorted(record)[:4]}")


def decode_part(record: Record, position: int, load_image: ImageLoader) -> ChatPart:
    kind = part_kind(record)
    if kind == "text":
        return TextPart(str(record["text"]))
    if kind == "document":
        return DocumentPart(
            sha256=str(record["document"]),
            name=str(record.get("name", "document")),
            total_pages=int(record.get("total_pages", 0)),
            text_pages=tuple(int(n) for n in record.get("text_pages", ())),
            image_pages=tuple(int(n) for n in record.get("image_pages", ())),
        )
    return load_image(position, record)


def decode_parts(records: Iterable[Record] | str, load_image: ImageLoader) -> tuple[ChatPart, ...]:
    """The parts of a stored or exported message (a JSON string or its records)."""
    if isinstance(records, str):
        records = json.loads(records)
    return tuple(decode_part(record, position, load_image) for position, record in enumerate(records))


def blob_sha256(part: ChatPart) -> str | None:
    """The sha256 a part's bytes are stored under (images and documents); None for text."""
    if isinstance(part, DocumentPart):
        return part.sha256
    if isinstance(part, ImagePart):
        return sha256_of(part.data)
    return None


def describe_part(part: ChatPart) -> str:
    """One line for a transcript: text as it is, files as `[image NAME WxH]` and
    `[document NAME, N pages; sent p. RANGE]`."""
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, DocumentPart):
        from documents.context import page_ranges

        return f"[document {part.name}, {part.total_pages} pages; sent p. {page_ranges(part.pages)}]"
    return f"[image {part.name} {part.width}x{part.height}]"


def summarize_part(part: ChatPart) -> Record:
    """A part as `sessions show --json` prints it: metadata, never bytes."""
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, DocumentPart):
        record = encode_part(part)
        return {"document": {"sha256": record.pop("document"), **record}}
    return {
        "image": {
            "sha256": sha256_of(part.data),
            "name": part.name,
            "mime": part.mime,
            "width": part.width,
            "height": part.height,
        }
    }
