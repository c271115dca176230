"""Versions in a real browser (Debian Chromium via Playwright): an edited question shows
‹ 2/2 › in its own bubble, ‹ brings the old turn and everything after it back, and a
search hit opens the branch that holds it. Screenshots land in test-artifacts/."""

from __future__ import annotations

from tests.fixtures.browser import ask, pytestmark, scroll_into_view, shot  # noqa: F401 (skip without Chromium)

ANSWER_S = 90_000  # a model answer under load
SHOWN_S = 30_000  # a stored branch put on screen


def answered(page, count: int) -> None:
    """Wait until `count` answers have finished (each ends with its metrics line)."""
    page.locator("#chat .metrics").nth(count - 1).wait_for(timeout=ANSWER_S)


def edit_first_question(page, text: str) -> None:
    page.locator("#chat .user-row").first.hover()
    page.locator("#chat button[aria-label='Edit']").first.click()
    page.locator("#chat textarea").first.fill(text)
    page.locator("#chat button[aria-label='Submit']").first.click()


def first_line(locator) -> str:
    return locator.inner_text().strip().split("\n")[0]


def test_edit_the_first_question_then_switch_back_to_the_old_branch(page, app_url):
    from playwright.sync_api import expect

    page.goto(app_url)
    ask(page, "What is the capital of Germany?")
    answered(page, 1)
    ask(page, "Which river flows through it?")
    answered(page, 2)
    bots = page.locator("#chat .bot-row")
    old_answer = first_line(bots.first)

    edit_first_question(page, "What is the capital of Italy?")
    answered(page, 1)
    first_question = page.locator("#chat .user-row").first
    switcher = first_question.locator(".placed-versions")
    expect(switcher).to_have_text("‹ 2/2 ›", timeout=SHOWN_S)  # where the question stands
    expect(page.locator("#chat .user-row")).to_have_count(1)  # the edit's branch: one turn so far
    assert "Italy" in first_question.inner_text() and "river" not in page.locator("#chat").inner_text()
    shot(page, "versions-2-of-2")

    switcher.get_by_title("previous version").click()
    expect(switcher).to_have_text("‹ 1/2 ›", timeout=SHOWN_S)
    expect(page.locator("#chat .user-row")).to_have_count(2)  # the old second turn is back
    chat = page.locator("#chat")
    expect(chat).to_contain_text("What is the capital of Germany?")
    expect(chat).to_contain_text("Which river flows through it?")
    assert first_line(bots.first) == old_answer
    expect(page.locator("#chat .metrics")).to_have_count(2)
    shot(page, "versions-1-of-2")

    switcher.get_by_title("next version").click()
    expect(switcher).to_have_text("‹ 2/2 ›", timeout=SHOWN_S)
    expect(page.locator("#chat .user-row")).to_have_count(1)

    edit_first_question(page, "What is the capital of Spain?")  # a question with versions, edited again
    expect(switcher).to_have_text("‹ 3/3 ›", timeout=ANSWER_S)
    expect(first_question).to_contain_text("Spain")

    # The newest branch is the edit's; a search for the old second turn opens its branch.
    search = page.locator("#search textarea, #search input").first
    search.fill("river flows")
    search.press("Enter")
    hit = page.locator("#chats label").filter(has_text="river").first
    hit.click()
    expect(page.locator("#chat .user-row")).to_have_count(2, timeout=SHOWN_S)
    expect(chat).to_contain_text("Which river flows through it?")
    expect(page.locator("#chat .search-hit")).to_have_count(1, timeout=SHOWN_S)
    expect(switcher).to_have_text("‹ 1/3 ›")
    shot(page, "versions-search-hit")
    page.set_viewport_size({"width": 420, "height": 900})  # a phone: the switcher still in its bubble
    scroll_into_view(switcher)  # all of it on a 420 px screen
    shot(page, "versions-search-hit-420")
