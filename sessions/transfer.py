"""A session as a file: JSON that holds everything (all branches, images as base64)
and imports back into an equal session, and Markdown of one branch for reading, with
its images written as files next to it."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from documents.parts import ChatPart, DocumentPart
from engine.budget import HEADER_BYTES, RequestBudget, check_request
from engine.images import DEFAULT_MAX_PIXELS, image_from_bytes
from engine.types import EngineInputError, ImagePart, TextPart

from .blobs import sha256_of
from .figures import row_metrics
from .import_checks import check_export
from .messages import METRIC_COLUMNS
from .parts import decode_parts, encode_part
from .rows import MessageRow, SessionRow

FORMAT = "llama4-playground/session"
VERSION = 1
ROLES = ("system", "user", "assistant")
STATUSES = ("streaming", "complete", "cancelled", "error", "interrupted")
MESSAGE_FIELDS = (
    "role",
    "created",
    "status",
    "engine_id",
    "params",
    "finish_reason",
    "error",
    "prompt_info",
    *METRIC_COLUMNS,
)
ReadBlob = Callable[[str], bytes]


@dataclass(frozen=True)
class ImportedMessage:
    local_id: int
    parent_local_id: int | None
    fields: dict[str, Any]  # column values except ids, text and parts
    parts: tuple[ChatPart, ...]


@dataclass(frozen=True)
class ImportedSession:
    fields: dict[str, Any]  # title, model, settings, created, updated
    messages: list[ImportedMessage]
    documents: dict[str, tuple[str, bytes]]  # sha256 in the export -> (name, bytes)


def session_to_json(session: SessionRow, rows: list[MessageRow], read_blob: ReadBlob) -> dict[str, Any]:
    """Message ids are renumbered 1..n in creation order, so exporting an imported
    session gives the same document."""
    local_ids = {row.id: index for index, row in enumerate(rows, start=1)}
    attachments: dict[str, dict[str, Any]] = {}
    messages = []
    for row in rows:
        message = {"id": local_ids[row.id], "parent_id": local_ids.get(row.parent_id)}
        message.update({name: getattr(row, name) for name in MESSAGE_FIELDS})
        message["parts"] = [_part_to_json(part, attachments, read_blob) for part in row.parts]
        messages.append(message)
    return {
        "format": FORMAT,
        "version": VERSION,
        "session": {
            "title": session.title,
            "model": session.model,
            "settings": session.settings,
            "created": session.created,
            "updated": session.updated,
        },
        "messages": messages,
        "attachments": attachments,
    }


def _part_to_json(
    part: ChatPart, attachments: dict[str, dict[str, Any]], read_blob: ReadBlob
) -> dict[str, Any]:
    """The part's record, with its bytes added to `attachments` once per sha256."""
    record = encode_part(part)
    if isinstance(part, DocumentPart) and part.sha256 not in attachments:
        data = read_blob(part.sha256)
        attachments[part.sha256] = {"document": part.name, "data": base64.b64encode(data).decode("ascii")}
    elif isinstance(part, ImagePart):
        attachments.setdefault(
            record["image"],
            {
                "mime": part.mime,
                "width": part.width,
                "height": part.height,
                "data": base64.b64encode(part.data).decode("ascii"),
            },
        )
    return record


def session_from_json(
    doc: Any, max_image_pixels: int = DEFAULT_MAX_PIXELS, budget: RequestBudget | None = None
) -> ImportedSession:
    """Checks the document as it reads it; raises EngineInputError with one line."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise EngineInputError("This file is not a chat exported from the playground.")
    if doc.get("version") != VERSION:
        raise EngineInputError(f"Chat export version {doc.get('version')!r} is not supported.")
    check_export(doc)  # bounds on every field, before anything is decoded or stored
    try:
        if budget is not None:
            _check_budget(doc, budget)
        attachments = doc.get("attachments", {})
        images = {
            sha: _image_from_json(sha, meta, max_image_pixels)
            for sha, meta in attachments.items()
            if "document" not in meta
        }
        documents = {
            sha: (str(meta["document"]), _base64(meta["data"], sha))
            for sha, meta in attachments.items()
            if "document" in meta
        }
        session = doc["session"]
        fields = {name: session[name] for name in ("title", "model", "settings", "created", "updated")}
        messages = [_message_from_json(message, images) for message in doc["messages"]]
    except EngineInputError:
        raise  # already one line that says what is wrong (a ValueError too)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise EngineInputError(f"The chat export is damaged ({type(exc).__name__}: {exc}).") from None
    _check_parents_come_first(messages)
    return ImportedSession(fields, messages, documents)


def _check_budget(doc: dict[str, Any], budget: RequestBudget) -> None:
    """Each message as one request (engine/budget.py): its text, parts and images, the
    images' sizes from their headers (the first bytes of their base64) only."""
    attachments = doc.get("attachments", {})
    for message in doc["messages"]:
        records = [r for r in message["parts"] if isinstance(r, dict)]
        texts = [str(r["text"]) for r in records if "text" in r]
        images = [_header(attachments[r["image"]]["data"]) for r in records if "image" in r]
        try:
            check_request(budget, texts, images, parts=len(message["parts"]))
        except EngineInputError as exc:
            raise EngineInputError(f"The chat export's message {message.get('id')}: {exc}") from None


def _header(text: str) -> bytes:
    quads = HEADER_BYTES * 4 // 3 // 4 * 4  # whole base64 quads
    try:
        return base64.b64decode(text[:quads], validate=True)
    except binascii.Error:
        return b""  # the full check says what is wrong with it


def rename_documents(
    imported: ImportedSession, renamed: dict[str, str], page_counts: dict[str, int] | None = None
) -> ImportedSession:
    """The same session with document parts pointing at the sha256s the store holds;
    with `page_counts` (by stored sha256), each part's pages are checked against the
    document the store read, not taken from the export's word."""

    def part(p: ChatPart) -> ChatPart:
        if not isinstance(p, DocumentPart):
            return p
        if p.sha256 not in renamed:
            raise EngineInputError(f"The chat export is damaged: document {p.name!r} is missing.")
        stored = dataclasses.replace(p, sha256=renamed[p.sha256])
        if page_counts is not None:
            _check_pages(stored, page_counts[stored.sha256])
        return stored

    messages = [dataclasses.replace(m, parts=tuple(part(p) for p in m.parts)) for m in imported.messages]
    return dataclasses.replace(imported, messages=messages)


def _check_pages(part: DocumentPart, pages: int) -> None:
    if part.total_pages != pages or any(not 1 <= n <= pages for n in part.pages):
        raise EngineInputError(
            f"The chat export is damaged: document {part.name!r} has {pages:,} pages, "
            "not the pages its message names."
        )


def _base64(text: str, sha256: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise EngineInputError(f"Attachment {sha256[:12]} in the chat export is not valid base64.") from None


def _image_from_json(sha256: str, meta: dict[str, Any], max_pixels: int) -> ImagePart:
    """Checked like an upload (engine/images.py: format, pixel limit, a full decode),
    its size and type taken from the pixels, not from the export's word."""
    data = _base64(meta["data"], sha256)
    if sha256_of(data) != sha256:
        raise EngineInputError(f"Image {sha256[:12]} in the chat export is damaged (checksum differs).")
    image = image_from_bytes(data, f"Image {sha256[:12]} in the chat export", max_pixels)
    if image.data != data:  # re-encoded: not the PNG or JPEG an upload is stored as
        raise EngineInputError(f"Image {sha256[:12]} in the chat export is not a PNG or JPEG.")
    return dataclasses.replace(image, name="image")


def _message_from_json(message: dict[str, Any], images: dict[str, ImagePart]) -> ImportedMessage:
    def load_image(_position: int, record: dict[str, Any]) -> ImagePart:
        image = images[record["image"]]
        return dataclasses.replace(image, name=str(record.get("name", "image")))

    parts = decode_parts(message["parts"], load_image)
    fields = {name: message.get(name) for name in MESSAGE_FIELDS}
    fields["engine_id"] = fields["engine_id"] or ""
    if fields["role"] not in ROLES or not isinstance(fields["created"], str):
        raise ValueError(f"message {message['id']} has no valid role or time")
    _check_field_types(message["id"], fields)
    if fields["status"] not in STATUSES:
        raise ValueError(f"message {message['id']} has an unknown status")
    if fields["status"] == "streaming":
        # Nothing is writing it any more.
        fields["status"] = "interrupted"
    return ImportedMessage(int(message["id"]), message.get("parent_id"), fields, parts)


def _check_field_types(message_id: Any, fields: dict[str, Any]) -> None:
    """Columns get what they hold: a nested object in a metric would reach SQLite."""
    for name in ("engine_id", "finish_reason", "error"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise ValueError(f"message {message_id} has a {name} that is not text")
    for name in METRIC_COLUMNS:
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"message {message_id} has a {name} that is not a number")
    for name in ("params", "prompt_info"):
        if fields[name] is not None and not isinstance(fields[name], dict):
            raise ValueError(f"message {message_id} has {name} that is not an object")


def _check_parents_come_first(messages: list[ImportedMessage]) -> None:
    seen: set[int] = set()
    for message in messages:
        if message.parent_local_id is not None and message.parent_local_id not in seen:
            raise EngineInputError(
                f"The chat export is damaged: message {message.local_id} comes before its parent."
            )
        seen.add(message.local_id)


def export_text(doc: dict[str, Any]) -> str:
    """A JSON export as its file holds it (the CLI's and the page's): indented UTF-8."""
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def export_stem(session: SessionRow) -> str:
    """The exported files' name, without extension: the title made safe, else the id."""
    return _slug(session.title) or f"chat-{session.id}"


def write_markdown(session: SessionRow, rows: list[MessageRow], directory: Path, read_blob: ReadBlob) -> Path:
    """<directory>/<title>.md plus one file per image or document beside it, linked relatively."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = export_stem(session)
    lines = [f"# {session.title or 'Untitled chat'}", ""]
    if session.model:
        lines += [f"Model: `{session.model}`", ""]
    for row in rows:
        lines += [f"## {row.role.capitalize()}", ""]
        for part in row.parts:
            if isinstance(part, TextPart):
                lines += [part.text, ""]
            elif isinstance(part, DocumentPart):
                filename = _write_document(part, read_blob(part.sha256), directory, stem)
                lines += [f"[{_escape_alt(part.name)}]({filename}) (pages sent: {_pages(part)})", ""]
            else:
                filename = _write_image(part, directory, stem)
                lines += [f"![{_escape_alt(part.name)}]({filename})", ""]
        footer = _markdown_footer(row)
        if footer:
            lines += [f"*{footer}*", ""]
    path = directory / f"{stem}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _write_image(part: ImagePart, directory: Path, stem: str) -> str:
    extension = mimetypes.guess_extension(part.mime) or ".bin"
    filename = f"{stem}-{sha256_of(part.data)[:12]}{extension}"
    target = directory / filename
    if not target.exists():
        target.write_bytes(part.data)
    return filename


def _write_document(part: DocumentPart, data: bytes, directory: Path, stem: str) -> str:
    filename = f"{stem}-{part.sha256[:12]}{Path(part.name).suffix.lower() or '.bin'}"
    target = directory / filename
    if not target.exists():
        target.write_bytes(data)
    return filename


def _pages(part: DocumentPart) -> str:
    from documents.context import page_ranges

    return page_ranges(part.pages)


def _markdown_footer(row: MessageRow) -> str:
    if row.role != "assistant":
        return ""
    return " · ".join(bit for bit in (row.engine_id, row_metrics(row)) if bit)


def _slug(title: str) -> str:
    # Safe as a file name and as a relative link on every platform.
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:60].lower()


def _escape_alt(name: str) -> str:
    return re.sub(r"([\[\]\\])", r"\\\1", name)
