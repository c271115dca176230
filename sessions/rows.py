"""What the store hands back: plain frozen rows, and the errors a caller can show as-is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from documents.parts import ChatPart
from engine.types import Role
from errors import NotFound

Status = Literal["streaming", "complete", "cancelled", "error", "interrupted"]
# The one map from how a stream ended to the status its answer has, stored and shown.
STATUS_BY_FINISH: dict[str, Status] = {
    "stop": "complete",
    "length": "complete",
    "cancelled": "cancelled",
    "error": "error",
}


class SessionNotFound(NotFound):
    """The session id is unknown (deleted in another tab, or a stale link)."""

    def __init__(self, session_id: str):
        super().__init__(f"No saved chat with id {session_id!r}; it may have been deleted.")
        self.session_id = session_id


class MessageNotFound(NotFound):
    """The message id is unknown, or belongs to another session."""

    def __init__(self, message_id: int):
        super().__init__(f"No saved message with id {message_id!r} in this chat.")
        self.message_id = message_id


@dataclass(frozen=True)
class SessionRow:
    id: str
    title: str
    created: str
    updated: str
    model: str
    settings: dict[str, Any]
    owner: str
    message_count: int = 0


@dataclass(frozen=True)
class AttachmentRow:
    """One stored file, shared by every message that holds the same bytes."""

    sha256: str
    mime: str
    name: str
    size: int
    width: int
    height: int
    pages: int


@dataclass(frozen=True)
class MessageRow:
    """One node of a session's message tree. `parts` are engine parts in their original
    order (images carry their bytes); `attachments` are the same images as metadata,
    for a UI that would rather show a file path than hold the bytes."""

    id: int
    session_id: str
    parent_id: int | None
    role: Role
    text: str
    parts: tuple[ChatPart, ...]
    created: str
    status: Status
    engine_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    prompt_tps: float | None = None
    decode_tps: float | None = None
    total_s: float | None = None
    cached_tokens: int | None = None  # prompt tokens reused from the KV cache
    finish_reason: str | None = None
    error: str | None = None
    attachments: tuple[AttachmentRow, ...] = ()
    prompt_info: dict[str, Any] = field(default_factory=dict)  # context used, pages sent


@dataclass(frozen=True)
class SearchHit:
    session_id: str
    session_title: str
    message_id: int
    role: Role
    snippet: str
    created: str
