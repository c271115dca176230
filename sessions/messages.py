"""Messages as rows: storing a message's parts (coded by .parts) and walking the tree.

Functions taking `conn` and writing must run inside `Connection.write`."""

from __future__ import annotations

import json
import re
from typing import Any

from documents.parts import ChatPart, DocumentPart
from engine.types import EngineInputError, ImagePart

from .blobs import Blobs, sha256_of
from .connection import Connection, writer_is_alive
from .parts import decode_parts
from .rows import AttachmentRow, MessageNotFound, MessageRow

METRIC_COLUMNS = (
    "prompt_tokens",
    "completion_tokens",
    "ttft_s",
    "prompt_tps",
    "decode_tps",
    "total_s",
    "cached_tokens",
)


def insert_message(conn: Connection, fields: dict[str, Any]) -> int:
    columns = ", ".join(fields)
    marks = ", ".join(f":{name}" for name in fields)
    cursor = conn.execute(f"INSERT INTO messages ({columns}) VALUES ({marks})", fields)
    return int(cursor.lastrowid)


def store_images(conn: Connection, blobs: Blobs, message_id: int, parts: tuple[ChatPart, ...]) -> None:
    """Blob files first, then their rows, all under the write lock: a concurrent delete
    of the last other user of a blob cannot remove the file between the two."""
    for position, part in enumerate(parts):
        if isinstance(part, DocumentPart):
            # Its bytes and rows were stored when it was read; link it like an image
            # so deleting the last chat that uses it removes it too.
            if conn.one("SELECT 1 FROM documents WHERE sha256 = ?", (part.sha256,)) is None:
                raise EngineInputError(f"{part.name} is not in the store; attach it again")
            conn.execute(
                "INSERT INTO message_attachments (message_id, sha256, position, name) VALUES (?, ?, ?, ?)",
                (message_id, part.sha256, position, part.name),
            )
            continue
        if not isinstance(part, ImagePart):
            continue
        sha256 = sha256_of(part.data)
        blobs.put(part.data, sha256)
        conn.execute(
            "INSERT OR IGNORE INTO attachments (sha256, mime, name, size, width, height)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sha256, part.mime, part.name, len(part.data), part.width, part.height),
        )
        conn.execute(
            "INSERT INTO message_attachments (message_id, sha256, position, name) VALUES (?, ?, ?, ?)",
            (message_id, sha256, position, part.name),
        )


def check_parent(conn: Connection, session_id: str, parent_id: int | None) -> None:
    if parent_id is None:
        return
    found = conn.one("SELECT 1 FROM messages WHERE id = ? AND session_id = ?", (parent_id, session_id))
    if found is None:
        raise MessageNotFound(parent_id)


def newest_message_id(conn: Connection, session_id: str) -> int | None:
    found = conn.one("SELECT max(id) AS id FROM messages WHERE session_id = ?", (session_id,))
    return found["id"] if found else None


def branch_records(conn: Connection, session_id: str, leaf_id: int) -> list[dict[str, Any]]:
    """Rows from the root down to `leaf_id`, following parent links upwards."""
    records = conn.rows(
        """
        WITH RECURSIVE chain (id, depth) AS (
            SELECT id, 0 FROM messages WHERE id = ? AND session_id = ?
            UNION ALL
            SELECT m.parent_id, chain.depth + 1
            FROM chain JOIN messages m ON m.id = chain.id
            WHERE m.parent_id IS NOT NULL
        )
        SELECT messages.* FROM chain JOIN messages ON messages.id = chain.id
        ORDER BY chain.depth DESC
        """,
        (leaf_id, session_id),
    )
    if not records:
        raise MessageNotFound(leaf_id)
    return records


def newest_descendant(conn: Connection, message_id: int) -> int:
    found = conn.one(
        """
        WITH RECURSIVE subtree (id) AS (
            SELECT id FROM messages WHERE id = ?
            UNION ALL
            SELECT m.id FROM messages m JOIN subtree ON m.parent_id = subtree.id
        )
        SELECT max(id) AS id FROM subtree
        """,
        (message_id,),
    )
    if found is None or found["id"] is None:
        raise MessageNotFound(message_id)
    return found["id"]


def sibling_ids(conn: Connection, message_id: int) -> list[int]:
    found = conn.rows(
        """
        SELECT sibling.id FROM messages AS me
        JOIN messages AS sibling
          ON sibling.session_id = me.session_id AND sibling.parent_id IS me.parent_id
        WHERE me.id = ?
        ORDER BY sibling.id
        """,
        (message_id,),
    )
    if not found:
        raise MessageNotFound(message_id)
    return [row["id"] for row in found]


def message_records(conn: Connection, where: str, params: Any) -> list[dict[str, Any]]:
    return conn.rows(f"SELECT * FROM messages WHERE {where} ORDER BY id", params)


def to_rows(conn: Connection, blobs: Blobs, records: list[dict[str, Any]]) -> list[MessageRow]:
    images = _images_by_message(conn, [record["id"] for record in records])
    return [_to_row(record, images.get(record["id"], {}), blobs) for record in records]


def _images_by_message(conn: Connection, message_ids: list[int]) -> dict[int, dict[int, AttachmentRow]]:
    found = conn.rows(
        """
        SELECT link.message_id, link.position, link.name AS part_name, a.*
        FROM message_attachments AS link JOIN attachments AS a ON a.sha256 = link.sha256
        WHERE link.message_id IN (SELECT value FROM json_each(?))
        """,
        (json.dumps(message_ids),),
    )
    by_message: dict[int, dict[int, AttachmentRow]] = {}
    for row in found:
        attachment = AttachmentRow(
            sha256=row["sha256"],
            mime=row["mime"],
            # The name it had in this message: the same bytes may be "a.png" here
            # and "scan.png" in another chat.
            name=row["part_name"] or row["name"],
            size=row["size"],
            width=row["width"],
            height=row["height"],
            pages=row["pages"],
        )
        by_message.setdefault(row["message_id"], {})[row["position"]] = attachment
    return by_message


def _load_image(blobs: Blobs, image: AttachmentRow, message_id: int) -> ImagePart:
    try:
        data = blobs.read(image.sha256)
    except FileNotFoundError:
        raise EngineInputError(
            f"Image {image.name!r} of message {message_id} is missing: {blobs.path(image.sha256)}"
        ) from None
    return ImagePart(data, image.mime, image.name, image.width, image.height)


def _to_row(record: dict[str, Any], images: dict[int, AttachmentRow], blobs: Blobs) -> MessageRow:
    attachments: list[AttachmentRow] = []

    def load_image(position: int, _encoded: dict[str, Any]) -> ImagePart:
        # The link row at this position holds the name the image had in this message.
        attachments.append(images[position])
        return _load_image(blobs, images[position], record["id"])

    parts = decode_parts(record["parts"], load_image)
    return MessageRow(
        id=record["id"],
        session_id=record["session_id"],
        parent_id=record["parent_id"],
        role=record["role"],
        text=record["text"],
        parts=tuple(parts),
        created=record["created"],
        status=record["status"],
        engine_id=record["engine_id"],
        params=json.loads(record["params"]),
        finish_reason=record["finish_reason"],
        error=record["error"],
        attachments=tuple(attachments),
        prompt_info=json.loads(record.get("prompt_info") or "{}"),
        **{name: record[name] for name in METRIC_COLUMNS},
    )


# A "quoted phrase" (newlines and all), else a run of non-space characters.
_FTS_TERM = re.compile(r'"([^"]*)"|(\S+)')


def literal_fts_query(text: str) -> str:
    """`text` as an FTS5 query that takes it literally: each word, or each "quoted
    phrase", becomes an FTS5 string with its own quotes doubled, so NEAR, OR, *, ^,
    column: and brackets are only text, and all of them must occur. NUL would end the
    string inside SQLite's FTS5 parser: it separates words like a space."""
    return " ".join('"' + term.replace('"', '""') + '"' for term in literal_terms(text))


def literal_terms(text: str) -> list[str]:
    """The words and "quoted phrases" of a search, as `literal_fts_query` reads them."""
    found = _FTS_TERM.findall(text.replace("\x00", " "))
    terms = [phrase if phrase.strip() else word for phrase, word in found]
    return [term for term in terms if term.strip()]


def mark_dead_streams_interrupted(conn: Connection) -> None:
    """Answers still 'streaming' whose writing process is gone were cut off by a
    crash. Streams of live processes (another app instance, another Store in this
    one) are left alone."""
    streaming = conn.rows("SELECT id, writer FROM messages WHERE status = 'streaming'")
    dead = [row["id"] for row in streaming if not writer_is_alive(row["writer"])]
    if not dead:
        return
    conn.write(
        lambda: conn.execute(
            "UPDATE messages SET status = 'interrupted', writer = NULL"
            " WHERE status = 'streaming' AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(dead),),
        )
    )
