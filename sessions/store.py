"""The Store: every read and write of saved chats goes through here.

Files: <data_dir>/playground.db (SQLite, WAL; open it with Datasette or the sqlite-utils
CLI to browse) and <data_dir>/blobs/ (attachment bytes, one file per sha256)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlite_utils import Database

from documents.parts import ChatMessage
from engine.budget import RequestBudget
from engine.types import EngineInputError, SamplingParams

from . import documents as docs
from . import messages as msgs
from . import search, transfer
from . import session_table as table
from .answer import AnswerWriter
from .blobs import Blobs, sha256_of
from .comparisons import Comparisons
from .connection import Connection, process_identity
from .evals import Evals
from .ids import now
from .parts import blob_sha256, encode_parts
from .rows import MessageNotFound, MessageRow, SearchHit, SessionNotFound, SessionRow
from .schema import migrations
from .sweep import STALE_AFTER_S, Swept, sweep

DB_NAME = "playground.db"


class Store:
    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = Blobs(self.data_dir / "blobs")
        self._conn = Connection(self.data_dir / DB_NAME)
        # Under the write lock, so two processes opening a new file at once do not
        # both try to create the tables.
        self._conn.write(lambda: migrations.apply(self._conn.db))
        msgs.mark_dead_streams_interrupted(self._conn)
        self.comparisons = Comparisons(self._conn)  # several models, one prompt; votes
        self.evals = Evals(self._conn)  # suite and fidelity runs

    @property
    def db(self) -> Database:
        """The sqlite_utils Database, for tools and benchmarks. Writing through it
        bypasses the store's rules (blobs, titles, the write lock)."""
        return self._conn.db

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # Sessions

    def create_session(
        self,
        title: str = "",
        model: str = "",
        settings: dict[str, Any] | None = None,
        owner: str = "",
        session_id: str | None = None,  # chosen ahead (a turn's KV state is saved under it)
    ) -> str:
        fields = {"title": title, "model": model, "settings": settings, "owner": owner, "id": session_id}
        return self._conn.write(lambda: table.insert_session(self._conn, fields))

    def list_sessions(
        self, limit: int = 50, offset: int = 0, owner: str = "", chats_only: bool = False
    ) -> list[SessionRow]:
        """Newest-updated first. `owner` is matched exactly: '' lists the sessions made
        without a login, never everyone's. `chats_only` leaves out comparisons."""
        return table.newest_sessions(self._conn, owner, limit, offset, chats_only)

    def get_session(self, session_id: str) -> SessionRow:
        return table.session(self._conn, session_id)

    def owned_session(self, session_id: str, owner: str) -> SessionRow:
        """The session if `owner` made it. Another user's session reads exactly like a
        missing one, so nobody can probe which ids exist."""
        row = table.session(self._conn, session_id)
        if row.owner != owner:
            raise SessionNotFound(session_id)
        return row

    def rename_session(self, session_id: str, title: str) -> None:
        self._conn.write(lambda: table.update_session(self._conn, session_id, {"title": title}))

    def update_session(
        self, session_id: str, *, model: str | None = None, settings: dict[str, Any] | None = None
    ) -> None:
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if settings is not None:
            changes["settings"] = json.dumps(settings)
        self._conn.write(lambda: table.update_session(self._conn, session_id, changes))

    def delete_session(self, session_id: str) -> None:
        """All rows go in one transaction; then, in a second one, the blob files that
        no other message uses; then the chat's saved KV state (its token ids)."""
        from engine.slot_state import session_files

        used = self._conn.write(lambda: table.delete_session_rows(self._conn, session_id))
        if used:
            self._conn.write(lambda: table.remove_unused_blobs(self._conn, self.blobs, used))
        for path in session_files(self.data_dir / "kv", session_id):
            path.unlink(missing_ok=True)

    def sweep(self, stale_after_s: float = STALE_AFTER_S) -> Swept:
        """Removes what crashes and deleted chats left: stale temporary files, documents
        and blobs no message holds, KV state of chats that are gone (sessions/sweep.py)."""
        return sweep(self._conn, self.blobs, self.data_dir, stale_after_s)

    def session_blobs(self, session_id: str) -> list[str]:
        """The sha256s of the images and documents this session's messages hold."""
        return table.session_blobs(self._conn, session_id)

    # Messages

    def add_user_message(self, session_id: str, parent_id: int | None, message: ChatMessage) -> int:
        """Committed before this returns, so the turn survives whatever generation
        does next. A `parent_id` that already has children makes a new branch (an
        edited turn); the old branch stays."""
        text, parts_json = encode_parts(message.parts)

        def write() -> int:
            session = table.require_session(self._conn, session_id)
            msgs.check_parent(self._conn, session_id, parent_id)
            stamp = now()
            fields = {
                "session_id": session_id,
                "parent_id": parent_id,
                "role": message.role,
                "text": text,
                "parts": parts_json,
                "created": stamp,
                "status": "complete",
            }
            message_id = msgs.insert_message(self._conn, fields)
            msgs.store_images(self._conn, self.blobs, message_id, message.parts)
            title = session["title"] or table.auto_title(self._conn, session_id, message, message_id)
            table.touch_session(self._conn, session_id, stamp, title)
            return message_id

        return self._conn.write(write)

    def update_user_parts(self, message_id: int, message: ChatMessage) -> None:
        """Record the pages the context budget chose for a question's documents, so
        later turns send the same pages. Only page choices may change: the parts must
        be the same documents, images and text in the same places."""
        stored = self.message(message_id)
        if [type(p) for p in stored.parts] != [type(p) for p in message.parts] or [
            blob_sha256(p) for p in stored.parts
        ] != [blob_sha256(p) for p in message.parts]:
            raise ValueError(f"message {message_id}: only document pages can change")
        _, parts_json = encode_parts(message.parts)
        self._conn.write(
            lambda: self._conn.execute(
                "UPDATE messages SET parts = ? WHERE id = ? AND role = 'user'", (parts_json, message_id)
            )
        )

    def start_answer(
        self,
        session_id: str,
        parent_id: int | None,
        engine_id: str,
        params: dict[str, Any] | SamplingParams | None = None,
        prompt_info: dict[str, Any] | None = None,
    ) -> AnswerWriter:
        """A new assistant row, status 'streaming'. Another answer to the same parent
        (regenerate) becomes a sibling; the earlier one stays. `prompt_info` records
        what the prompt held (context used, pages sent)."""
        if isinstance(params, SamplingParams):
            params = dataclasses.asdict(params)
        fields = {
            "session_id": session_id,
            "parent_id": parent_id,
            "role": "assistant",
            "created": now(),
            "engine_id": engine_id,
            "params": json.dumps(params or {}),
            "prompt_info": json.dumps(prompt_info or {}),
            "status": "streaming",
            "writer": process_identity(),
        }

        def write() -> int:
            table.require_session(self._conn, session_id)
            msgs.check_parent(self._conn, session_id, parent_id)
            message_id = msgs.insert_message(self._conn, fields)
            table.touch_session(self._conn, session_id, fields["created"])
            return message_id

        return AnswerWriter(self._conn, self._conn.write(write), session_id)

    def message(self, message_id: int) -> MessageRow:
        records = msgs.message_records(self._conn, "id = ?", (message_id,))
        if not records:
            raise MessageNotFound(message_id)
        return msgs.to_rows(self._conn, self.blobs, records)[0]

    def branch(self, session_id: str, leaf_id: int | None = None) -> list[MessageRow]:
        """Messages from the root to `leaf_id` (default: the session's most recently
        created message, i.e. the branch last worked on)."""
        if leaf_id is None:
            table.require_session(self._conn, session_id)
            leaf_id = msgs.newest_message_id(self._conn, session_id)
            if leaf_id is None:
                return []
        records = msgs.branch_records(self._conn, session_id, leaf_id)
        return msgs.to_rows(self._conn, self.blobs, records)

    def latest_leaf(self, message_id: int) -> int:
        """The most recently created message at or below `message_id`: after moving
        to a sibling, `branch(session, latest_leaf(sibling))` shows its conversation."""
        return msgs.newest_descendant(self._conn, message_id)

    def siblings(self, message_id: int) -> list[int]:
        """Ids of the messages sharing this one's parent (itself included), oldest first."""
        return msgs.sibling_ids(self._conn, message_id)

    def all_messages(self, session_id: str) -> list[MessageRow]:
        """Every message of the session, all branches, in creation order."""
        table.require_session(self._conn, session_id)
        records = msgs.message_records(self._conn, "session_id = ?", (session_id,))
        return msgs.to_rows(self._conn, self.blobs, records)

    def blob_path(self, sha256: str) -> Path:
        return self.blobs.path(sha256)

    def readable_blob(self, sha256: str, owner: str) -> tuple[Path, str] | None:
        """(file, MIME type) of a stored image or document that a chat of `owner`
        holds; None otherwise, whether it exists or not (so nobody can probe which
        bytes others sent)."""
        found = self._conn.one(
            """
            SELECT a.mime FROM attachments a WHERE a.sha256 = ? AND EXISTS (
                SELECT 1 FROM message_attachments l
                JOIN messages m ON m.id = l.message_id
                JOIN sessions s ON s.id = m.session_id
                WHERE l.sha256 = a.sha256 AND s.owner = ?
            )
            """,
            (sha256, owner),
        )
        path = self.blobs.path(sha256)
        return (path, found["mime"]) if found and path.is_file() else None

    def chat_messages(self, rows: list[MessageRow]) -> list[ChatMessage]:
        return chat_messages(rows)

    # Documents

    def ingest_document(
        self,
        data: bytes,
        name: str,
        *,
        password: str | None = None,
        max_pages: int = 2000,
        progress=None,
        cancel=None,
    ) -> docs.DocumentRow:
        """Parse a document once per sha256 and keep its pages; later calls with the
        same bytes return the stored one at once, under the caller's `name` (the
        name another uploader gave it stays theirs), and an encrypted one only with
        its password: its pages are stored unlocked, so each reader proves they can
        open it. Raises DocumentError (one line)."""
        from documents.reader import decrypted_pdf, parse_document

        sha256 = sha256_of(data)
        found = docs.find(self._conn, sha256)
        if found is not None:
            if b"/Encrypt" in data:  # every encrypted PDF says so in plain text; others rarely
                decrypted_pdf(data, password, name)  # PasswordRequired / WrongPassword
            return dataclasses.replace(found, name=name)
        parsed = parse_document(
            data, name, password=password, max_pages=max_pages, progress=progress, cancel=cancel
        )
        # Pages are rendered later, without asking again: keep the PDF unlocked.
        stored = decrypted_pdf(data, password) if password else data

        def write() -> None:
            if docs.find(self._conn, sha256) is None:  # another tab may have won the race
                docs.insert(self._conn, self.blobs, parsed, stored)

        self._conn.write(write)
        return dataclasses.replace(docs.find(self._conn, sha256), name=name)

    def document(self, sha256: str) -> docs.DocumentRow:
        found = docs.find(self._conn, sha256)
        if found is None:
            raise EngineInputError(f"No stored document with sha256 {sha256[:12]}…; attach it again.")
        return found

    def document_pages(self, sha256: str) -> list[docs.PageRow]:
        return docs.pages(self._conn, sha256)

    def rank_pages(self, sha256: str, question: str) -> list[int]:
        """Pages sharing words with the question, most relevant first (FTS5 bm25)."""
        return docs.rank(self._conn, sha256, question)

    # Export and import

    def export_json(self, session_id: str) -> dict[str, Any]:
        """The whole session, every branch, images inline as base64 (json.dumps-able)."""
        return transfer.session_to_json(
            self.get_session(session_id), self.all_messages(session_id), self.blobs.read
        )

    def export_markdown(self, session_id: str, directory: Path | str, leaf_id: int | None = None) -> Path:
        """One branch (default: the latest) as <directory>/<title>.md, images beside it."""
        session = self.get_session(session_id)
        return transfer.write_markdown(
            session, self.branch(session_id, leaf_id), Path(directory), self.blobs.read
        )

    def import_json(
        self,
        doc: dict[str, Any] | str | bytes,
        owner: str = "",
        max_image_pixels: int = 40_000_000,
        budget: RequestBudget | None = None,
    ) -> str:
        """A new session equal to the exported one (new ids); returns its id. Images
        and documents are checked as uploads are; each message against the request
        `budget` (its images' headers only) before any image is decoded."""
        if isinstance(doc, str | bytes):
            try:
                doc = json.loads(doc)
            except RecursionError:
                raise EngineInputError("This file is not a chat export (JSON nested too deeply).") from None
            except ValueError:
                raise EngineInputError("This file is not a chat export (not JSON).") from None
        imported = transfer.session_from_json(doc, max_image_pixels, budget)
        # Documents are read into the store first (outside the write lock: parsing is
        # slow); an unlocked PDF stored from an encrypted one gets a new sha256.
        stored = {sha: self.ingest_document(data, name) for sha, (name, data) in imported.documents.items()}
        renamed = {sha: row.sha256 for sha, row in stored.items()}
        pages = {row.sha256: row.pages for row in stored.values()}
        imported = transfer.rename_documents(imported, renamed, pages)
        return self._conn.write(lambda: table.insert_imported(self._conn, self.blobs, imported, owner))

    # Search

    def search(
        self, query: str, limit: int = 20, owner: str = "", chats_only: bool = False
    ) -> list[SearchHit]:
        """Full-text search over message text, newest match first. The query is taken
        as plain words (FTS operators are quoted away), all of which must occur;
        `chats_only` leaves out comparisons. EngineInputError when it runs too long
        (see sessions/search.py)."""
        quoted = msgs.literal_fts_query(query)
        if not quoted:
            return []
        terms = msgs.literal_terms(query)
        found = search.search_records(self._conn, quoted, terms, owner, limit, chats_only)
        return [SearchHit(**record) for record in found]


def chat_messages(rows: list[MessageRow]) -> list[ChatMessage]:
    """A stored branch as the conversation a model continues: every turn in order,
    images with their bytes. Failed answers and empty rows are left out, as the live
    chat does."""
    return [
        ChatMessage(row.role, row.parts)
        for row in rows
        if row.parts and not (row.role == "assistant" and row.status == "error")
    ]
