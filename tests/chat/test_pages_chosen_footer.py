"""The lasting "sent N of M pages" line: stored with the answer (prompt_info) and shown
in its footer wherever the stored answer is shown again (the page's history)."""

from __future__ import annotations

from documents.context import ContextReport, selection_line


def test_the_footer_says_which_pages_went_and_why():
    from chat.metrics import context_line

    report = ContextReport(1900, 2048, 512, pages_sent={"report.pdf": [1, 2, 3, 40, 41, 120], "a.pdf": [1]})
    report.fitted_by = "relevant"
    chosen = [1, 2, 3, 40, 41, 120]
    report.selection = [{"name": "report.pdf", "pages": chosen, "total": 137, "why": "relevant"}]
    stored = report.as_dict()
    line = context_line(stored)
    assert "report.pdf: sent 6 of 137 pages: 1–3, 40–41, 120 — most relevant to the question" in line
    assert "a.pdf p. 1" in line  # a document that went whole keeps the short form
    assert "sent 6 of 137 pages" in report.line()


def test_older_answers_without_a_selection_keep_their_footer():
    from chat.metrics import context_line

    assert context_line({"context_used": 10, "n_ctx": 20, "pages_sent": {"a.pdf": [1, 2]}}) == (
        "context 10 of 20 · a.pdf p. 1–2"
    )
    assert selection_line({"name": "x.pdf", "pages": [5], "total": 9, "why": "range"}) == (
        "x.pdf: sent 1 of 9 pages: 5 — the pages asked for"
    )
