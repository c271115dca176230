"""Pages in a real browser: single pages sent as text, image or both from the field next
to the documents (with what each choice costs under the answer), and the lasting "sent N
of M pages" line with its one click to ask again with other pages."""

from __future__ import annotations

import os

from documents.parts import ChatMessage, DocumentPart
from engine.types import Final, TextPart, Usage
from sessions import Store
from tests.documents.test_documents_context import SECRET_PAGE, long_report, mixed_pdf
from tests.documents.test_page_modes import TYPED
from tests.fixtures.browser import ask, pytestmark, shot  # noqa: F401 (skip without Chromium)

QUESTION = "What is the launch code for the falcon project?"


def test_single_pages_as_image_or_both_from_the_documents_field(page, vision_app_url, tmp_path):
    from playwright.sync_api import expect

    pdf = tmp_path / "mixed.pdf"
    pdf.write_bytes(mixed_pdf([TYPED, TYPED, None]))
    page.goto(vision_app_url)
    page.locator("#documents > button").click()
    modes = page.locator("#page-modes textarea")
    modes.fill("9=image")  # past the end of the document: one line, nothing sent
    page.locator("#input input[type=file]").set_input_files([str(pdf)])
    thumbnail = page.locator("#input [aria-label='File thumbnail']")
    thumbnail.first.wait_for(timeout=30_000)
    ask(page, "What is on these pages?")
    page.get_by_text("page modes: mixed.pdf has 3 pages; no page 9").first.wait_for(timeout=60_000)
    assert page.locator("#chat .message").count() == 0 and thumbnail.count() == 1  # kept to send again
    modes.fill("2=both")
    page.locator("#input textarea").press("Enter")  # the attachment stayed in the box
    metrics = page.locator("#chat .metrics").last
    expect(metrics).to_contain_text("image+text p. 2 (", timeout=120_000)
    line = metrics.inner_text()
    assert "mixed.pdf as text p. 1 (" in line and "image p. 3 (" in line
    shot(page, "pages-single-page-modes")


def stored_chat(title: str) -> None:
    """A saved chat about a 300-page report of which only the relevant page was sent."""
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        row = store.ingest_document(long_report(300), "report.pdf")
        session = store.create_session(title=title)
        doc = DocumentPart(row.sha256, row.name, 300, text_pages=(SECRET_PAGE,))
        user = store.add_user_message(session, None, ChatMessage("user", (doc, TextPart(QUESTION))))
        chosen = {"name": "report.pdf", "pages": [SECRET_PAGE], "total": 300, "why": "relevant"}
        info = {"context_used": 900, "n_ctx": 8192, "pages_sent": {"report.pdf": [SECRET_PAGE]}}
        info |= {"fitted_by": "relevant", "selection": [chosen]}
        with store.start_answer(session, user, "smollm2-135m", prompt_info=info) as answer:
            answer.append("The launch code is MAGENTA-7 [p. 137].")
            answer.finish(Final("stop", Usage(prompt_tokens=900, completion_tokens=12)))


def test_the_sent_pages_line_lasts_and_one_click_sends_other_pages(page, app_url):
    from playwright.sync_api import expect

    stored_chat("Falcon launch code")
    page.goto(app_url)
    entry = page.locator("#chats label").filter(has_text="Falcon launch code").first
    entry.wait_for(timeout=30_000)
    entry.click()
    lasting = f"report.pdf: sent 1 of 300 pages: {SECRET_PAGE} — most relevant to the question"
    expect(page.locator("#chat .metrics").last).to_contain_text(lasting, timeout=30_000)
    left = page.locator("#pages-left-range textarea")
    expect(left).to_have_value(f"1–{SECRET_PAGE - 1}, {SECRET_PAGE + 1}–300", timeout=30_000)
    shot(page, "pages-left-offered")
    left.fill("1-3")
    page.locator("#send-pages").click()
    page.locator("#chat").get_by_text("answer 2/2").wait_for(timeout=120_000)
    metrics = page.locator("#chat .metrics").last
    expect(metrics).to_contain_text("report.pdf: sent 3 of 300 pages: 1–3 — the pages asked for")
    expect(left).to_have_value("4–300", timeout=30_000)  # still offered: the rest is left out
    shot(page, "pages-left-sent-range")
