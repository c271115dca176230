"""The input's attachments in a real browser (Debian Chromium via Playwright): chips say
each file's name, size and pages or pixels, × removes one before sending, and New chat
starts with an empty input whose files are not sent with its first message."""

from __future__ import annotations

import os

from tests.fixtures.browser import ask, pytestmark, scroll_into_view, shot  # noqa: F401 (skip without Chromium)
from tests.fixtures.documents import text_pdf

ANSWER_S = 90_000  # a model answer under load
SHOWN_S = 30_000  # an upload or a page update


def newest_question(title_start: str):
    """The first question of the newest saved chat whose title starts so (the store)."""
    from sessions import Store

    with Store(os.environ["L4P_DATA_DIR"]) as store:
        session = next(s for s in store.list_sessions() if s.title.startswith(title_start))
        return next(m for m in store.all_messages(session.id) if m.role == "user")


def test_chips_name_each_file_and_remove_one_before_sending(page, app_url, write_png, tmp_path):
    from playwright.sync_api import expect

    pdf = tmp_path / "three-pages.pdf"
    pdf.write_bytes(text_pdf(["Apples are red.", "Pears are green.", "Plums are purple."]))
    page.goto(app_url)
    page.locator("#input input[type=file]").set_input_files([str(write_png("wide.png", 120, 40)), str(pdf)])
    chips = page.locator("#attachment-chips .chip")
    expect(chips).to_have_count(2, timeout=SHOWN_S)
    expect(chips.nth(0)).to_contain_text("wide.png")
    expect(chips.nth(0)).to_contain_text("120×40 px")
    expect(chips.nth(1)).to_contain_text("three-pages.pdf")
    expect(chips.nth(1)).to_contain_text("3 pages")
    expect(chips.nth(1)).to_contain_text(" kB")
    shot(page, "chips-two-files")
    page.set_viewport_size({"width": 420, "height": 900})  # a phone: each chip and its × fit
    for chip in (chips.nth(0), chips.nth(1)):
        scroll_into_view(chip)  # all of it, × included, on a 420 px screen
    shot(page, "chips-two-files-420")

    chips.nth(0).get_by_role("button", name="Remove wide.png").click()
    expect(chips).to_have_count(1, timeout=SHOWN_S)
    expect(chips.first).to_contain_text("three-pages.pdf")
    expect(page.locator("#input .thumbnail-wrapper")).to_have_count(1)

    ask(page, "Which fruit is green in the chip test?")
    page.locator("#chat .metrics").last.wait_for(timeout=ANSWER_S)
    expect(chips).to_have_count(0)  # sent: the input is empty again
    question = newest_question("Which fruit is green in the chip test?")
    assert [p.name for p in question.parts if hasattr(p, "name")] == ["three-pages.pdf"]  # no image


def test_new_chat_starts_with_an_empty_input(page, app_url, write_png):
    from playwright.sync_api import expect

    page.goto(app_url)
    ask(page, "What is the capital of Spain?")
    page.locator("#chat .metrics").last.wait_for(timeout=ANSWER_S)
    page.locator("#input input[type=file]").set_input_files([str(write_png("left-behind.png"))])
    expect(page.locator("#attachment-chips .chip")).to_contain_text("left-behind.png", timeout=SHOWN_S)
    page.locator("#input textarea").fill("a draft for the old chat")

    page.locator("#new-chat").click()
    expect(page.locator("#chat .message")).to_have_count(0, timeout=SHOWN_S)
    expect(page.locator("#input textarea")).to_have_value("", timeout=SHOWN_S)
    expect(page.locator("#input .thumbnail-wrapper")).to_have_count(0)
    expect(page.locator("#attachment-chips .chip")).to_have_count(0)
    shot(page, "new-chat-empty-input")

    ask(page, "What is the capital of Portugal?")
    page.locator("#chat .metrics").last.wait_for(timeout=ANSWER_S)
    question = newest_question("What is the capital of Portugal?")
    assert question.text == "What is the capital of Portugal?"
    assert [type(p).__name__ for p in question.parts] == ["TextPart"]  # the old file stayed behind
