"""Small things a person sees (issue 28, item 6), in Debian Chromium via Playwright:
chat images small and numbered, compare columns whole on a phone, search results in
plain words, a citation to a page the document lacks not linked, the metrics line in
words, Delete not offered for the embedded model. Screenshots in test-artifacts/."""

from __future__ import annotations

import os

from documents.parts import ChatMessage, DocumentPart
from engine.types import TextPart
from sessions import Store
from tests.fixtures.browser import ask, attach, pytestmark, shot  # noqa: F401 (skip without Chromium)
from tests.fixtures.documents import text_pdf

CHAT_IMAGES = "#chat .image-frame img"


def test_chat_images_are_small_and_numbered(page, vision_app_url, tmp_path):
    from PIL import Image

    tall = []
    for color in ("red", "blue"):
        Image.new("RGB", (600, 1200), color).save(tmp_path / f"{color}.png")
        tall.append(str(tmp_path / f"{color}.png"))
    page.goto(vision_app_url)
    attach(page, tall)
    page.locator("#input img").nth(1).wait_for(timeout=30_000)
    ask(page, "compare the two images")
    metrics = page.locator("#chat .metrics").last
    metrics.wait_for(timeout=90_000)
    assert "first token after" in metrics.inner_text() and "TTFT" not in metrics.inner_text()
    images = page.locator(CHAT_IMAGES)
    images.nth(1).wait_for(timeout=30_000)
    heights = [box["height"] for box in (images.nth(i).bounding_box() for i in range(2))]
    assert all(0 < height <= 240 for height in heights), heights
    numbers = page.evaluate(
        """() => [...document.querySelectorAll("#chat .image-container")]
            .map((el) => getComputedStyle(el, "::after").content)"""
    )
    assert numbers == ['"image " counter(chat-image)'] * 2 or numbers == ['"image 1"', '"image 2"'], numbers
    shot(page, "chat-images")


def test_compare_columns_are_whole_on_a_phone(browser, compare_app_url):
    page = browser.new_page(viewport={"width": 420, "height": 900})
    try:
        page.goto(compare_app_url)
        page.get_by_role("tab", name="Compare").click()
        columns = page.locator("#compare-columns > .compare-column")
        columns.nth(1).wait_for(timeout=30_000)
        first, second = columns.nth(0).bounding_box(), columns.nth(1).bounding_box()
        for box in (first, second):
            assert box["x"] >= 0 and box["x"] + box["width"] <= 420 + 1, box  # not cut at the edge
        assert second["y"] >= first["y"] + first["height"] - 1  # one under the other
        shot(page, "compare-phone")
    finally:
        page.close()


def test_search_shows_plain_words_and_a_missing_page_is_not_linked(page, app_url):
    pages = ["Zeppelins float over the north orchard.", "Pears ripen late in the south field."]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        row = store.ingest_document(text_pdf(pages), "airships.pdf")
        session = store.create_session(title="Airship notes")
        question = ChatMessage(
            "user",
            (
                DocumentPart(row.sha256, row.name, 2, text_pages=(1, 2)),
                TextPart("## Notes on **quillfeather**"),
            ),
        )
        user = store.add_user_message(session, None, question)
        with store.start_answer(session, user, "smollm2-135m") as answer:
            answer.append("Pears ripen late [p. 2]; the rest is on [p. 200].")
    page.goto(app_url)
    search = page.locator("#search textarea, #search input").first
    search.fill("quillfeather")
    search.press("Enter")
    hit = page.locator("#chats label").filter(has_text="quillfeather").first
    hit.wait_for(timeout=30_000)
    assert "**" not in hit.inner_text() and "##" not in hit.inner_text()
    assert page.get_by_text("1 chat matches “quillfeather”").count() == 1
    hit.click()
    chat = page.locator("#chat")
    chat.get_by_role("link", name="[p. 2]").wait_for(timeout=30_000)
    assert chat.get_by_text("[p. 200]").count() == 1  # shown, as words
    assert chat.get_by_role("link", name="[p. 200]").count() == 0
    chat.get_by_role("link", name="[p. 2]").click()  # the viewer opens on page 2
    sent = page.locator("#page-sent")
    sent.get_by_text("Sent to the model").wait_for(timeout=30_000)
    assert sent.bounding_box()["height"] >= 16  # a line a person can read, not collapsed
    shot(page, "search-plain-and-viewer")


def test_the_embedded_model_offers_no_delete(page, app_url):
    from playwright.sync_api import expect

    page.goto(app_url)
    page.get_by_role("tab", name="Models").click()
    page.locator("#models-name input").click()
    page.locator("li[role=option]").filter(has_text="smollm2-135m").first.click()
    expect(page.locator("#models-delete")).to_be_disabled(timeout=30_000)
    table = page.locator("#models-table")
    right = table.bounding_box()["x"] + table.bounding_box()["width"]
    for header in ("size", "fits here", "placement"):  # every column in view, none off to the right
        cell = table.locator("th").filter(has_text=header).first
        assert cell.bounding_box()["x"] + cell.bounding_box()["width"] <= right + 1, header
    shot(page, "models-embedded")
