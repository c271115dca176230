"""The store never makes one user wait for another: reads run on their own connection
per thread (WAL), so another thread's long read holds neither reads nor writes; a
search over a ~1M-character message answers quickly with a bounded snippet; a read
past its deadline stops with a one-line "narrow your search"."""

from __future__ import annotations

import threading
import time

import pytest

from documents.parts import ChatMessage
from engine.types import EngineInputError
from sessions import Store
from sessions import search as search_module
from sessions.connection import QueryTooSlow

# A read that keeps SQLite busy for seconds on any machine: counting through a
# recursive CTE (no table, so it holds no lock a writer needs).
SLOW_READ = """
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000000)
    SELECT count(*) AS c FROM n
"""
HUGE_CHARS = 1_000_000


def huge_text() -> str:
    """The word searched for everywhere in it: FTS5's snippet() scored every pair of its
    ~100,000 occurrences (quadratic: minutes at this size)."""
    words = " ".join(f"quokka word{n % 997}" for n in range(HUGE_CHARS // 15))
    return words[:HUGE_CHARS]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path) as store:
        yield store


def test_a_search_over_a_million_character_message_is_quick_and_bounded(store):
    session = store.create_session(title="huge")
    store.add_user_message(session, None, ChatMessage.text("user", huge_text()))
    started = time.monotonic()
    hits = store.search("quokka")
    took = time.monotonic() - started
    assert took < 5, took  # it was minutes, with every other user waiting
    assert len(hits) == 1 and "**quokka**" in hits[0].snippet
    assert len(hits[0].snippet) <= search_module.SNIPPET_CHARS * 2
    assert store.search("word5 quokka")[0].snippet.count("**") >= 4


def test_another_threads_long_read_holds_no_one(store):
    session = store.create_session(title="busy")
    parent = store.add_user_message(session, None, ChatMessage.text("user", "the quokka smiles"))
    finished: dict[str, float] = {}

    def long_read():
        store._conn.rows(SLOW_READ)  # a slow query of one user's request
        finished["long"] = time.monotonic()

    reader = threading.Thread(target=long_read)
    reader.start()
    time.sleep(0.3)  # the long read is under way
    assert store.list_sessions()[0].title == "busy"
    assert store.search("quokka")[0].session_id == session
    store.add_user_message(session, parent, ChatMessage.text("user", "written meanwhile"))
    finished["others"] = time.monotonic()
    reader.join()
    assert finished["others"] < finished["long"], "another user's reads and writes waited for the long read"


def test_a_read_past_its_deadline_stops(store):
    started = time.monotonic()
    with pytest.raises(QueryTooSlow):
        store._conn.rows(SLOW_READ, deadline_s=0.2)
    assert time.monotonic() - started < 3
    assert store.list_sessions() == []  # the connection still serves


def test_a_search_past_its_deadline_asks_to_narrow_it(store, monkeypatch):
    session = store.create_session(title="many", owner="ann")
    parent = None
    for n in range(1500):
        parent = store.add_user_message(session, parent, ChatMessage.text("user", f"common words number {n}"))
    monkeypatch.setattr(search_module, "DEADLINE_S", 0.0)
    with pytest.raises(EngineInputError) as refused:
        store.search("common", owner="bob")  # every match is someone else's: all are scanned
    assert "narrow your search" in str(refused.value) and "\n" not in str(refused.value)
    monkeypatch.setattr(search_module, "DEADLINE_S", 2.0)
    assert len(store.search("common", owner="ann")) == 20
