"""The database schema as named, append-only migrations.

Never edit or reorder a migration that has shipped: databases in the wild have it
recorded as applied. Change the schema by appending a new function."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("llama4-playground.sessions")


@migrations(name="m001_initial")
def m001_initial(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}'  -- JSON object
        )"""
    )
    db.execute("CREATE INDEX sessions_by_updated ON sessions (updated DESC)")
    # An INTEGER PRIMARY KEY keeps rowids stable across VACUUM, which the
    # external-content FTS index relies on; AUTOINCREMENT keeps a deleted id from
    # being handed out again while a UI may still hold it.
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions (id),
            parent_id INTEGER REFERENCES messages (id),
            role TEXT NOT NULL,
            text TEXT NOT NULL DEFAULT '',     -- text parts joined, for FTS and display
            parts TEXT NOT NULL DEFAULT '[]',  -- JSON: [{"text": ...} | {"image": sha256}]
            created TEXT NOT NULL,
            engine_id TEXT NOT NULL DEFAULT '',
            params TEXT NOT NULL DEFAULT '{}', -- JSON sampling parameters
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_s REAL,
            prompt_tps REAL,
            decode_tps REAL,
            total_s REAL,
            finish_reason TEXT,
            status TEXT NOT NULL DEFAULT 'complete',
            error TEXT,
            writer TEXT  -- process that streams this row, while status = 'streaming'
        )"""
    )
    db.execute("CREATE INDEX messages_by_session ON messages (session_id, id)")
    db.execute("CREATE INDEX messages_by_parent ON messages (parent_id)")
    # Opening the store looks for answers a dead process left half-written; this
    # partial index keeps that a lookup instead of a scan of every message.
    db.execute("CREATE INDEX messages_streaming ON messages (id) WHERE status = 'streaming'")
    db.execute(
        """
        CREATE TABLE attachments (
            sha256 TEXT PRIMARY KEY,
            mime TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            size INTEGER NOT NULL,
            width INTEGER NOT NULL DEFAULT 0,
            height INTEGER NOT NULL DEFAULT 0,
            pages INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute(
        """
        CREATE TABLE message_attachments (
            message_id INTEGER NOT NULL REFERENCES messages (id),
            sha256 TEXT NOT NULL REFERENCES attachments (sha256),
            position INTEGER NOT NULL,  -- index of the part within the message
            name TEXT NOT NULL DEFAULT '',  -- the name it had in this message
            PRIMARY KEY (message_id, position)
        )"""
    )
    db.execute("CREATE INDEX message_attachments_by_sha256 ON message_attachments (sha256)")
    db.table("messages").enable_fts(["text"], create_triggers=True)


@migrations(name="m002_session_owner")
def m002_session_owner(db: Database) -> None:
    # Sessions belong to a login name once the app runs with auth; '' is "no login".
    db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("CREATE INDEX sessions_by_owner_updated ON sessions (owner, updated DESC)")
    db.execute("DROP INDEX sessions_by_updated")


@migrations(name="m003_documents")
def m003_documents(db: Database) -> None:
    # A document is parsed once per sha256; its bytes are a blob like an image's
    # (an `attachments` row with `pages`), its text one row per page.
    db.execute(
        """
        CREATE TABLE documents (
            sha256 TEXT PRIMARY KEY REFERENCES attachments (sha256),
            kind TEXT NOT NULL,               -- pdf, epub, xps, ..., text
            pages INTEGER NOT NULL,
            pages_with_text INTEGER NOT NULL,
            pages_needing_vision INTEGER NOT NULL,
            chars INTEGER NOT NULL,
            estimated_tokens INTEGER NOT NULL,
            created TEXT NOT NULL
        )"""
    )
    # An INTEGER PRIMARY KEY so the FTS index's rowids survive VACUUM.
    db.execute(
        """
        CREATE TABLE document_pages (
            id INTEGER PRIMARY KEY,
            sha256 TEXT NOT NULL REFERENCES documents (sha256),
            number INTEGER NOT NULL,           -- 1-based
            text TEXT NOT NULL,
            needs_vision INTEGER NOT NULL,     -- scanned or mostly figures
            image_fraction REAL NOT NULL DEFAULT 0,
            UNIQUE (sha256, number)
        )"""
    )
    db.table("document_pages").enable_fts(["text"], create_triggers=True, tokenize="porter")
    # What a prompt held: context used of the loaded window, pages sent per document,
    # turns dropped to fit. Recorded on the answer it produced.
    db.execute("ALTER TABLE messages ADD COLUMN prompt_info TEXT NOT NULL DEFAULT '{}'")


@migrations(name="m004_comparisons")
def m004_comparisons(db: Database) -> None:
    # A comparison is one prompt answered by several models: the answers are messages
    # (siblings under one user turn, or one per model branch for a follow-up), listed
    # here in the column order the user saw. Deleting a session deletes its rows.
    db.execute(
        """
        CREATE TABLE comparisons (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            created TEXT NOT NULL,
            blind INTEGER NOT NULL DEFAULT 0  -- names hidden until the vote
        )"""
    )
    db.execute("CREATE INDEX comparisons_by_session ON comparisons (session_id, id)")
    db.execute(
        """
        CREATE TABLE comparison_answers (
            comparison_id INTEGER NOT NULL REFERENCES comparisons (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,  -- column, left to right (A, B, ...)
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            PRIMARY KEY (comparison_id, position)
        )"""
    )
    db.execute("CREATE INDEX comparison_answers_by_message ON comparison_answers (message_id)")
    # One vote per comparison: 'best' names the winning column; 'tie' and 'bad'
    # (all answers bad) name none.
    db.execute(
        """
        CREATE TABLE comparison_votes (
            comparison_id INTEGER PRIMARY KEY REFERENCES comparisons (id) ON DELETE CASCADE,
            outcome TEXT NOT NULL CHECK (outcome IN ('best', 'tie', 'bad')),
            winner_position INTEGER,
            created TEXT NOT NULL,
            CHECK ((outcome = 'best') = (winner_position IS NOT NULL))
        )"""
    )


@migrations(name="m005_cached_tokens")
def m005_cached_tokens(db: Database) -> None:
    # Prompt tokens an answer reused from the KV cache instead of evaluating; NULL
    # for answers saved before this column (and from backends that do not say).
    db.execute("ALTER TABLE messages ADD COLUMN cached_tokens INTEGER")


@migrations(name="m006_evals")
def m006_evals(db: Database) -> None:
    # An evaluation run (a suite over models, or fidelity of variants to a reference),
    # and one row per finished unit: a suite conversation's turn per model, or a
    # fidelity variant. A run resumes by skipping the units it has.
    db.execute(
        """CREATE TABLE eval_runs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('suite', 'fidelity')),
            name TEXT NOT NULL,
            models TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            owner TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE eval_results (
            run_id INTEGER NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            item TEXT NOT NULL,
            turn INTEGER NOT NULL DEFAULT 0,
            passed INTEGER NOT NULL DEFAULT 0,
            total INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            answer TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            PRIMARY KEY (run_id, model, item, turn)
        )"""
    )


@migrations(name="m007_page_sizes")
def m007_page_sizes(db: Database) -> None:
    # Each page's size in points (1/72 in), so a page image is costed from the size it
    # will render at without drawing it; 0 for text files and pages stored before this.
    db.execute("ALTER TABLE document_pages ADD COLUMN width REAL NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE document_pages ADD COLUMN height REAL NOT NULL DEFAULT 0")


@migrations(name="m008_page_ocr")
def m008_page_ocr(db: Database) -> None:
    # 1 when a page's text was read off its image by OCR (a scan, a photo of a page),
    # so the page viewer and citations can say so; 0 for a text layer.
    db.execute("ALTER TABLE document_pages ADD COLUMN ocr INTEGER NOT NULL DEFAULT 0")
