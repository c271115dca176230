"""The "ask again with other pages" row: which pages it offers, and when it shows."""

from __future__ import annotations

from app.pages_left import left_out, shown
from chat.turns import Turn, assistant_turn
from documents.parts import ChatMessage


def test_the_pages_left_out_are_offered():
    chosen = [{"name": "report.pdf", "pages": [1, 2, 3, 40, 41, 137], "total": 137, "why": "relevant"}]
    assert left_out(chosen) == "4–39, 42–136"
    assert left_out([{"name": "a.pdf", "pages": [1, 2], "total": 2}]) == ""  # every page went
    assert left_out([]) == ""


def test_the_row_shows_only_under_an_answer_that_left_pages_out():
    answer = assistant_turn("It says so [p. 3].", "complete")
    answer.selection = [{"name": "a.pdf", "pages": [3], "total": 5, "why": "relevant"}]
    question = Turn(ChatMessage.text("user", "What does it say?"))
    row, pages = shown([question, answer])
    assert row.visible is True and pages.value == "1–2, 4–5"
    row, _ = shown([question])  # a question still waiting for its answer
    assert row.visible is False
    row, _ = shown([question, assistant_turn("All of it.", "complete")])
    assert row.visible is False
