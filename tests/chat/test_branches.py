"""Versions of questions and answers (chat/branches.py) on a real store: an edit and a
regeneration leave siblings; each turn knows its neighbours; a chosen version or a
search hit opens the branch that holds it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.render import to_chatbot
from chat.branches import branch_through, mark_versions, parse_chat_choice, versions_among
from chat.turns import turns_from_rows
from documents.parts import ChatMessage
from engine.types import Final, Usage
from sessions import MessageNotFound, Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "data") as opened:
        yield opened


def answer(store: Store, session_id: str, parent_id: int, text: str) -> int:
    writer = store.start_answer(session_id, parent_id, "test-engine")
    writer.append(text)
    writer.finish(Final("stop", Usage(prompt_tokens=5, completion_tokens=3)))
    return writer.id


def ask(store: Store, session_id: str, parent_id: int | None, text: str) -> int:
    return store.add_user_message(session_id, parent_id, ChatMessage.text("user", text))


@pytest.fixture
def edited_chat(store):
    """Two turns, then the first question edited and answered: ids by name."""
    chat = store.create_session()
    first = ask(store, chat, None, "capital of Germany?")
    first_answer = answer(store, chat, first, "Berlin")
    second = ask(store, chat, first_answer, "and its river?")
    second_answer = answer(store, chat, second, "the Spree")
    edited = ask(store, chat, None, "capital of Italy?")
    edited_answer = answer(store, chat, edited, "Rome")
    return chat, dict(
        first=first, first_answer=first_answer, second=second, second_answer=second_answer, edited=edited,
        edited_answer=edited_answer,
    )  # fmt: skip


def texts(rows) -> list[str]:
    return [row.text for row in rows]


def test_where_a_version_stands_among_its_siblings():
    assert versions_among([4], 4) is None  # no siblings: nothing to switch
    first, middle, last = (versions_among([4, 9, 12], at) for at in (4, 9, 12))
    assert (first.label, first.previous, first.following) == ("1/3", None, 9)
    assert (middle.label, middle.previous, middle.following) == ("2/3", 4, 12)
    assert (last.label, last.previous, last.following) == ("3/3", 9, None)


def test_the_edited_question_shows_its_versions_where_it_stands(store, edited_chat):
    chat, ids = edited_chat
    turns = mark_versions(turns_from_rows(store.branch(chat), str), store.siblings)
    assert [t.message.plain_text for t in turns] == ["capital of Italy?", "Rome"]
    assert turns[0].branch == "2/2" and turns[0].versions.previous == ids["first"]
    assert turns[1].versions is None  # its answer has no siblings
    shown = to_chatbot(turns)
    assert f"'question-versions qv-2-of-2 qv-previous-{ids['first']}'" in shown[1]["content"]


def test_switching_back_shows_the_old_turn_and_everything_after_it(store, edited_chat):
    chat, ids = edited_chat
    rows = branch_through(store, chat, ids["first"])
    assert texts(rows) == ["capital of Germany?", "Berlin", "and its river?", "the Spree"]
    turns = mark_versions(turns_from_rows(rows, str), store.siblings)
    assert [t.branch for t in turns] == ["1/2", "", "", ""]
    assert turns[0].versions.following == ids["edited"]
    assert texts(branch_through(store, chat, ids["edited"])) == ["capital of Italy?", "Rome"]


def test_a_regenerated_answer_deep_in_the_chat_is_switchable(store, edited_chat):
    chat, ids = edited_chat
    again = answer(store, chat, ids["first"], "Berlin, again")
    turns = mark_versions(turns_from_rows(branch_through(store, chat, ids["first"]), str), store.siblings)
    # The first question's newest branch is the regeneration: its second turn is gone.
    assert [t.message.plain_text for t in turns] == ["capital of Germany?", "Berlin, again"]
    assert turns[1].branch == "2/2" and turns[1].versions.previous == ids["first_answer"]
    older = branch_through(store, chat, ids["first_answer"])
    assert texts(older) == ["capital of Germany?", "Berlin", "and its river?", "the Spree"]
    assert again not in [row.id for row in older]


def test_a_search_hit_opens_the_branch_that_holds_it(store, edited_chat):
    chat, ids = edited_chat
    hit = next(h for h in store.search("Spree") if h.session_id == chat)
    session_id, message_id = parse_chat_choice(f"{hit.session_id}#{hit.message_id}")
    assert (session_id, message_id) == (chat, ids["second_answer"])
    assert texts(branch_through(store, session_id, message_id))[-1] == "the Spree"
    assert texts(store.branch(chat))[-1] == "Rome"  # the newest branch would not hold it


def test_a_version_of_another_chat_is_refused(store, edited_chat):
    chat, ids = edited_chat
    other = store.create_session()
    with pytest.raises(MessageNotFound):
        branch_through(store, other, ids["first"])
    with pytest.raises(MessageNotFound):
        branch_through(store, chat, 10**9)


def test_a_chat_choice_without_a_hit_is_the_chat_alone():
    assert parse_chat_choice("abc") == ("abc", None)
    assert parse_chat_choice("abc#12") == ("abc", 12)
    assert parse_chat_choice("abc#x") == ("abc", None)
    assert parse_chat_choice("") == ("", None)


def test_the_page_shows_both_switchers_and_keeps_the_question_s_while_reading(store, edited_chat):
    chat, ids = edited_chat
    again = answer(store, chat, ids["edited"], "Rome, again")
    turns = mark_versions(turns_from_rows(store.branch(chat), str), store.siblings)
    question, reply = to_chatbot(turns)[1]["content"].split("</span>", 1)[0], to_chatbot(turns)[1]["content"]
    assert "question-versions" in question and "qv-2-of-2" in question  # leads the answer's bubble
    assert "answer 2/2" in reply and f"#version-{ids['edited_answer']}" in reply and again == turns[1].id
    reading = replace(turns[1], status="reading", message=ChatMessage.text("assistant", "reading 40%"))
    shown = to_chatbot([turns[0], reading])[1]["content"]
    assert "question-versions" in shown and "reading 40%" in shown
