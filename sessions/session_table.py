"""SQL for the sessions table, and for what goes with a session as a whole (deleting
it with its messages and unused blobs, inserting an imported one).

Functions named like writes must run inside `Connection.write`."""

from __future__ import annotations

import json
from typing import Any

from documents.parts import ChatMessage
from engine.types import TextPart

from . import documents
from . import messages as msgs
from .blobs import Blobs
from .connection import Connection
from .ids import new_session_id, now
from .parts import encode_parts
from .rows import SessionNotFound, SessionRow
from .transfer import ImportedSession

# A comparison is a session too (chat/comparison.py): its settings name the models.
NOT_A_COMPARISON = "json_extract(s.settings, '$.compare') IS NULL"
TITLE_CHARS = 60
WITH_COUNT = "SELECT s.*, (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count"


def insert_session(conn: Connection, fields: dict[str, Any]) -> str:
    session_id = fields.get("id") or new_session_id()
    row = {"created": now(), **fields, "id": session_id, "settings": json.dumps(fields["settings"] or {})}
    row.setdefault("updated", row["created"])
    conn.execute(
        "INSERT INTO sessions (id, title, created, updated, model, settings, owner)"
        " VALUES (:id, :title, :created, :updated, :model, :settings, :owner)",
        row,
    )
    return session_id


def newest_sessions(
    conn: Connection, owner: str, limit: int, offset: int, chats_only: bool = False
) -> list[SessionRow]:
    chats = f" AND {NOT_A_COMPARISON}" if chats_only else ""
    found = conn.rows(
        f"{WITH_COUNT} FROM sessions s WHERE s.owner = ?{chats}"
        " ORDER BY s.updated DESC, s.id LIMIT ? OFFSET ?",
        (owner, limit, offset),
    )
    return [_session_row(record) for record in found]


def session(conn: Connection, session_id: str) -> SessionRow:
    found = conn.one(f"{WITH_COUNT} FROM sessions s WHERE s.id = ?", (session_id,))
    if found is None:
        raise SessionNotFound(session_id)
    return _session_row(found)


def require_session(conn: Connection, session_id: str) -> dict[str, Any]:
    """The bare row (id, title), without counting messages."""
    found = conn.one("SELECT id, title FROM sessions WHERE id = ?", (session_id,))
    if found is None:
        raise SessionNotFound(session_id)
    return found


def update_session(conn: Connection, session_id: str, changes: dict[str, Any]) -> None:
    changes = {**changes, "updated": now(), "id": session_id}
    assignments = ", ".join(f"{name} = :{name}" for name in changes if name != "id")
    cursor = conn.execute(f"UPDATE sessions SET {assignments} WHERE id = :id", changes)
    if cursor.rowcount == 0:
        raise SessionNotFound(session_id)


def touch_session(conn: Connection, session_id: str, stamp: str, title: str | None = None) -> None:
    """Moves the session to the top of the list (and sets its title, if given)."""
    if title is None:
        conn.execute("UPDATE sessions SET updated = ? WHERE id = ?", (stamp, session_id))
    else:
        conn.execute("UPDATE sessions SET updated = ?, title = ? WHERE id = ?", (stamp, title, session_id))


def auto_title(conn: Connection, session_id: str, message: ChatMessage, message_id: int) -> str:
    """A title from the session's first user message; '' for any later one."""
    if message.role != "user":
        return ""
    earlier = conn.one(
        "SELECT 1 FROM messages WHERE session_id = ? AND role = 'user' AND id != ?",
        (session_id, message_id),
    )
    return "" if earlier is not None else title_from(message)


def title_from(message: ChatMessage) -> str:
    """The first ~60 characters of the text on one line, or 'Image chat'."""
    texts = (part.text for part in message.parts if isinstance(part, TextPart))
    line = " ".join(" ".join(texts).split())
    if not line:
        return "Image chat" if message.images else ""
    if len(line) <= TITLE_CHARS:
        return line
    return line[:TITLE_CHARS].rstrip() + "…"


IN_SESSION = "SELECT id FROM messages WHERE session_id = ?"


def session_blobs(conn: Connection, session_id: str) -> list[str]:
    used = conn.rows(
        f"SELECT DISTINCT sha256 FROM message_attachments WHERE message_id IN ({IN_SESSION})",
        (session_id,),
    )
    return [row["sha256"] for row in used]


def delete_session_rows(conn: Connection, session_id: str) -> list[str]:
    """Deletes the session, its messages and links, and attachment rows no other
    message uses. Returns the sha256s the session used, for `remove_unused_blobs`."""
    require_session(conn, session_id)
    in_session = IN_SESSION
    shas = session_blobs(conn, session_id)
    conn.execute(f"DELETE FROM message_attachments WHERE message_id IN ({in_session})", (session_id,))
    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    documents.remove_unused(conn, shas)
    conn.execute(
        """
        DELETE FROM attachments
        WHERE sha256 IN (SELECT value FROM json_each(?))
          AND NOT EXISTS (SELECT 1 FROM message_attachments l WHERE l.sha256 = attachments.sha256)
        """,
        (json.dumps(shas),),
    )
    return shas


def remove_unused_blobs(conn: Connection, blobs: Blobs, shas: list[str]) -> None:
    """Run in its own write transaction after `delete_session_rows`: a blob whose row
    came back in between (the same image attached again) keeps its file."""
    for sha256 in shas:
        if conn.one("SELECT 1 FROM attachments WHERE sha256 = ?", (sha256,)) is None:
            blobs.remove(sha256)


def insert_imported(conn: Connection, blobs: Blobs, imported: ImportedSession, owner: str) -> str:
    session_id = insert_session(conn, {**imported.fields, "owner": owner})
    new_ids: dict[int, int] = {}
    for message in imported.messages:
        text, parts_json = encode_parts(message.parts)
        fields = {
            **message.fields,
            "params": json.dumps(message.fields["params"] or {}),
            "prompt_info": json.dumps(message.fields.get("prompt_info") or {}),
            "session_id": session_id,
            "parent_id": new_ids.get(message.parent_local_id),
            "text": text,
            "parts": parts_json,
        }
        new_ids[message.local_id] = msgs.insert_message(conn, fields)
        msgs.store_images(conn, blobs, new_ids[message.local_id], message.parts)
    return session_id


def _session_row(record: dict[str, Any]) -> SessionRow:
    return SessionRow(
        id=record["id"],
        title=record["title"],
        created=record["created"],
        updated=record["updated"],
        model=record["model"],
        settings=json.loads(record["settings"]),
        owner=record["owner"],
        message_count=record["message_count"],
    )
