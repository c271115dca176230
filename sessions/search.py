"""Full-text search over saved messages, bounded whatever the messages hold.

FTS5's own snippet() re-reads and scores every token of a matching message: minutes
for one ~1M-character message, all of it while the database was busy. Here FTS5 only
finds the matching rows (its index makes that fast), and the snippet is cut in SQL
from a bounded window around the first occurrence of the first word; the whole query
runs under a deadline, past which the user is asked to narrow the search."""

from __future__ import annotations

import re
from typing import Any

from engine.types import EngineInputError

from .connection import Connection, QueryTooSlow
from .session_table import NOT_A_COMPARISON

DEADLINE_S = 2.0
SNIPPET_BEFORE, SNIPPET_CHARS = 60, 200
TOO_SLOW = "the search took too long; narrow your search (more or longer words)"


def search_records(
    conn: Connection, fts_query: str, terms: list[str], owner: str, limit: int, chats_only: bool = False
) -> list[dict[str, Any]]:
    """Matching messages, newest first, each with a snippet of at most SNIPPET_CHARS
    around its first word, that word's occurrences in **bold**; `chats_only` leaves out
    comparisons. EngineInputError (one line) when the search runs past DEADLINE_S."""
    anchor = terms[0] if terms else ""
    chats = f" AND {NOT_A_COMPARISON}" if chats_only else ""
    try:
        found = conn.rows(
            f"""
            SELECT m.id AS message_id, m.session_id, s.title AS session_title, m.role, m.created,
                   substr(m.text, max(1, instr(lower(m.text), lower(:anchor)) - :before), :chars) AS snippet
            FROM messages_fts
            JOIN messages m ON m.id = messages_fts.rowid
            JOIN sessions s ON s.id = m.session_id
            WHERE messages_fts MATCH :query AND s.owner = :owner{chats}
            ORDER BY messages_fts.rowid DESC
            LIMIT :limit
            """,
            {
                "anchor": anchor,
                "before": SNIPPET_BEFORE,
                "chars": SNIPPET_CHARS,
                "query": fts_query,
                "owner": owner,
                "limit": limit,
            },
            deadline_s=DEADLINE_S,
        )
    except QueryTooSlow:
        raise EngineInputError(TOO_SLOW) from None
    for record in found:
        record["snippet"] = _highlight(record["snippet"] or "", terms)
    return found


def _highlight(window: str, terms: list[str]) -> str:
    text = " ".join(window.split())
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return text
    pattern = re.compile("|".join(re.escape(word) for word in words), re.IGNORECASE)
    return pattern.sub(lambda match: f"**{match[0]}**", text)
