"""Documents in a real browser: a PDF and two images through the file picker, and a
page citation in an answer opening that page in the page viewer."""

from __future__ import annotations

import os

from documents.parts import ChatMessage, DocumentPart
from engine.types import TextPart
from sessions import Store
from tests.fixtures.browser import ask, attach, pytestmark, shot  # noqa: F401 (skip without Chromium)
from tests.fixtures.documents import text_pdf


def test_attach_two_images_and_a_pdf_with_the_file_picker(page, vision_app_url, write_png, tmp_path):
    pdf = tmp_path / "notes.pdf"
    pdf.write_bytes(text_pdf(["The first page talks about apples. " * 8, "The second is about pears. " * 8]))
    page.goto(vision_app_url)
    files = [str(write_png("red.png")), str(pdf), str(write_png("blue.png", color="blue"))]
    attach(page, files)
    page.locator("#input img").nth(1).wait_for(timeout=30_000)
    shot(page, "documents-attached")
    ask(page, "What do the images and the notes show?")
    # The budget line shows above the chat while the answer streams, then under it.
    page.locator("#chat .metrics").last.wait_for(timeout=180_000)
    chat = page.locator("#chat")
    assert chat.locator("img").count() >= 2
    assert "notes.pdf" in chat.inner_text()
    assert "notes.pdf p. 1–2" in page.locator("#chat .metrics").last.inner_text()
    shot(page, "documents-pdf-and-images")


def test_a_page_citation_opens_the_page(page, app_url):
    pages = ["Apples grow in the north orchard. " * 6, "Pears ripen late in the south field. " * 6]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        row = store.ingest_document(text_pdf(pages), "orchard.pdf")
        session = store.create_session(title="Orchard citations")
        question = ChatMessage(
            "user", (DocumentPart(row.sha256, row.name, 2, text_pages=(1, 2)), TextPart("Pears?"))
        )
        user = store.add_user_message(session, None, question)
        with store.start_answer(session, user, "smollm2-135m") as answer:
            answer.append("Pears ripen late in the south field [p. 2].")
    page.goto(app_url)
    entry = page.locator("#chats label").filter(has_text="Orchard citations").first
    entry.wait_for(timeout=30_000)
    entry.click()
    link = page.locator("#chat a").filter(has_text="[p. 2]").first
    link.wait_for(timeout=30_000)
    link.click()
    viewer = page.locator("#page-viewer")
    viewer.get_by_text("orchard.pdf — page 2 of 2").wait_for(timeout=30_000)
    assert "Pears ripen late in the south field" in viewer.inner_text()
    page.locator("#page-image img").wait_for(timeout=30_000)  # the page as the model would see it
    shot(page, "documents-citation-viewer")
