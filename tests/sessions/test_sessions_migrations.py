"""Databases written by older versions open and upgrade without losing anything."""

from __future__ import annotations

import json

from sqlite_utils import Database

from documents.parts import ChatMessage
from engine.types import TextPart
from sessions import Store
from sessions.schema import migrations
from sessions.store import DB_NAME

SHIPPED = [
    "m001_initial",
    "m002_session_owner",
    "m003_documents",
    "m004_comparisons",
    "m005_cached_tokens",
    "m006_evals",
    "m007_page_sizes",
    "m008_page_ocr",
]


def test_migrations_are_append_only():
    # Shipped names and their order are fixed: databases in the wild record them.
    names = [migration.name for migration in migrations._migrations]
    assert names[: len(SHIPPED)] == SHIPPED


def build_first_version_database(data_dir) -> None:
    """What the first release wrote: only m001 applied, then a chat saved."""
    data_dir.mkdir()
    db = Database(data_dir / DB_NAME)
    migrations.apply(db, stop_before="m002_session_owner")
    stamp = "2024-05-01T10:00:00.000000+00:00"
    db["sessions"].insert(
        {"id": "oldsession01", "title": "Before owners", "created": stamp, "updated": stamp, "model": "scout"}
    )
    question = {
        "session_id": "oldsession01",
        "role": "user",
        "text": "what is an astrolabe",
        "parts": json.dumps([{"text": "what is an astrolabe"}]),
        "created": stamp,
    }
    question_id = db["messages"].insert(question).last_pk
    answer = {
        **question,
        "parent_id": question_id,
        "role": "assistant",
        "text": "An old instrument.",
        "parts": json.dumps([{"text": "An old instrument."}]),
        "status": "complete",
        "completion_tokens": 4,
    }
    db["messages"].insert(answer)
    assert "owner" not in db["sessions"].columns_dict
    db.close()


def test_first_version_database_upgrades_with_its_data(tmp_path):
    data_dir = tmp_path / "data"
    build_first_version_database(data_dir)

    with Store(data_dir) as store:
        assert [m.name for m in migrations.applied(store.db)] == SHIPPED
        listed = store.list_sessions()
        assert [(row.id, row.title, row.owner, row.message_count) for row in listed] == [
            ("oldsession01", "Before owners", "", 2)
        ]
        rows = store.branch("oldsession01")
        assert [(row.role, row.text, row.parts) for row in rows] == [
            ("user", "what is an astrolabe", (TextPart("what is an astrolabe"),)),
            ("assistant", "An old instrument.", (TextPart("An old instrument."),)),
        ]
        assert [hit.session_id for hit in store.search("astrolabe")] == ["oldsession01"]
        # The upgraded database takes new writes like a fresh one.
        store.add_user_message("oldsession01", rows[-1].id, ChatMessage.text("user", "and a sextant?"))
        assert store.create_session(owner="dana") in [s.id for s in store.list_sessions(owner="dana")]


def test_reopening_applies_nothing_twice(tmp_path):
    Store(tmp_path).close()
    with Store(tmp_path) as store:
        applied = migrations.applied(store.db)
        assert [m.name for m in applied] == SHIPPED
        assert migrations.pending(store.db) == []
        assert store.db.journal_mode == "wal"
        # Plain tables a Datasette or `sqlite-utils` user can browse and search.
        tables = set(store.db.table_names())
        assert {"sessions", "messages", "attachments", "message_attachments"} <= tables
        assert store.db["messages"].detect_fts() == "messages_fts"
