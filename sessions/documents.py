"""Documents as rows: one `documents` row and one row per page, parsed once per sha256,
with an FTS5 index over page text for ranking pages by relevance (bm25).

Functions taking `conn` and writing must run inside `Connection.write`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .blobs import Blobs
from .connection import Connection
from .ids import now

# Words that match nearly every page rank nothing; leaving them out of the OR query
# keeps bm25 about the question's content words.
_STOPWORDS = """
a an and are as at be by can do does for from has have how i in is it its me of on or page
pages say says tell than that the their there these this to was were what when where which
who why will with you your
"""
STOPWORDS = frozenset(_STOPWORDS.split())
WORD = re.compile(r"\w{2,}", re.UNICODE)


@dataclass(frozen=True)
class DocumentRow:
    sha256: str
    name: str
    kind: str
    mime: str
    size: int
    pages: int
    pages_with_text: int
    pages_needing_vision: int
    chars: int
    estimated_tokens: int

    def summary(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "name": self.name,
            "kind": self.kind,
            "bytes": self.size,
            "pages": self.pages,
            "pages_with_text": self.pages_with_text,
            "pages_needing_vision": self.pages_needing_vision,
            "estimated_tokens": self.estimated_tokens,
        }


@dataclass(frozen=True)
class PageRow:
    number: int
    text: str
    needs_vision: bool
    image_fraction: float
    width: float = 0.0  # points; 0 when unknown (text files, pages stored before sizes)
    height: float = 0.0
    ocr: bool = False  # the text was read off the page image


def find(conn: Connection, sha256: str) -> DocumentRow | None:
    found = conn.one(
        """
        SELECT d.*, a.name, a.mime, a.size FROM documents d
        JOIN attachments a ON a.sha256 = d.sha256 WHERE d.sha256 = ?
        """,
        (sha256,),
    )
    if found is None:
        return None
    found.pop("created")
    return DocumentRow(**found)


def insert(conn: Connection, blobs: Blobs, parsed, data: bytes) -> None:
    """Bytes, attachment row, document row and every page, in the caller's one
    transaction: a crash leaves either all of it or none."""
    blobs.put(data, parsed.sha256)
    conn.execute(
        "INSERT OR IGNORE INTO attachments (sha256, mime, name, size, pages) VALUES (?, ?, ?, ?, ?)",
        (parsed.sha256, parsed.mime, parsed.name, len(data), len(parsed.pages)),
    )
    conn.execute(
        """
        INSERT INTO documents (sha256, kind, pages, pages_with_text, pages_needing_vision, chars,
                               estimated_tokens, created)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            parsed.sha256,
            parsed.kind,
            len(parsed.pages),
            parsed.pages_with_text,
            parsed.pages_needing_vision,
            parsed.chars,
            parsed.estimated_tokens,
            now(),
        ),
    )
    conn.db.conn.executemany(
        "INSERT INTO document_pages (sha256, number, text, needs_vision, image_fraction, width, height, ocr)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                parsed.sha256,
                p.number,
                p.text,
                int(p.needs_vision),
                float(p.image_fraction),
                p.width,
                p.height,
                int(getattr(p, "ocr", False)),
            )
            for p in parsed.pages
        ],
    )


def pages(conn: Connection, sha256: str) -> list[PageRow]:
    return [
        PageRow(
            r["number"],
            r["text"],
            bool(r["needs_vision"]),
            r["image_fraction"],
            r["width"],
            r["height"],
            bool(r["ocr"]),
        )
        for r in conn.rows(
            "SELECT number, text, needs_vision, image_fraction, width, height, ocr FROM document_pages"
            " WHERE sha256 = ? ORDER BY number",
            (sha256,),
        )
    ]


def rank(conn: Connection, sha256: str, question: str, limit: int = 10_000) -> list[int]:
    """Page numbers that share words with the question, most relevant first (bm25)."""
    words = [w for w in dict.fromkeys(WORD.findall(question.lower())) if w not in STOPWORDS]
    if not words:
        return []
    query = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
    found = conn.rows(
        """
        SELECT p.number FROM document_pages_fts
        JOIN document_pages p ON p.id = document_pages_fts.rowid
        WHERE document_pages_fts MATCH ? AND p.sha256 = ?
        ORDER BY bm25(document_pages_fts), p.number
        LIMIT ?
        """,
        (query, sha256, limit),
    )
    return [row["number"] for row in found]


def remove_unused(conn: Connection, shas: list[str]) -> None:
    """Page and document rows of these documents that no message uses any more; run
    before their attachment rows go (the document row points at its attachment)."""
    orphaned = """
        sha256 IN (SELECT value FROM json_each(?))
        AND NOT EXISTS (SELECT 1 FROM message_attachments l WHERE l.sha256 = {table}.sha256)
    """
    for table in ("document_pages", "documents"):
        conn.execute(f"DELETE FROM {table} WHERE " + orphaned.format(table=table), (json.dumps(shas),))
