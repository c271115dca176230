"""A person using the page in a real browser (Debian Chromium via Playwright).
Screenshots land in test-artifacts/ for a human to look at."""

from __future__ import annotations

import os

from tests.fixtures.browser import ask, attach, pytestmark, shot  # noqa: F401 (skip without Chromium)


def test_type_send_and_see_the_streamed_answer(page, app_url):
    page.goto(app_url)
    ask(page, "What is the capital of France?")
    answer = page.locator("#chat .message.bot, #chat [data-testid='bot']").last
    answer.get_by_text("Paris").wait_for(timeout=60_000)
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    assert "tokens/s" in page.locator("#chat .metrics").last.inner_text()
    shot(page, "chat-answer")


def test_attach_two_images_to_the_vision_model(page, vision_app_url, write_png):
    page.goto(vision_app_url)
    files = [str(write_png("red.png")), str(write_png("blue.png", color="blue"))]
    attach(page, files)
    page.locator("#input img").nth(1).wait_for(timeout=30_000)  # both thumbnails shown
    ask(page, "compare the two images")
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    assert page.locator("#chat img").count() >= 2
    shot(page, "chat-two-images")


def test_licence_footer_for_llama_models(page, vision_app_url):
    page.goto(vision_app_url)
    footer = page.locator("#footer")
    footer.get_by_text("Built with Llama").wait_for(timeout=30_000)
    assert footer.get_by_role("link", name="Llama 4 Community License").count() == 1


def test_saved_chat_appears_in_the_sidebar_after_reload(page, app_url):
    page.goto(app_url)
    ask(page, "What is the capital of Japan?")
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    page.reload()
    entry = page.locator("#chats label").filter(has_text="What is the capital of Japan?").first
    entry.wait_for(timeout=30_000)
    entry.click()
    page.locator("#chat .metrics").last.wait_for(timeout=30_000)
    assert "Tokyo" in page.locator("#chat").inner_text()
    shot(page, "sidebar-resume")


def test_editing_a_question_branches_and_answers_again(page, app_url):
    from sessions import Store

    page.goto(app_url)
    ask(page, "What is the capital of Germany?")
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    page.locator("#chat .user").first.hover()
    page.locator("#chat button[aria-label='Edit']").first.click()
    page.locator("#chat textarea").first.fill("What is the capital of Italy?")
    page.locator("#chat button[aria-label='Submit']").first.click()
    page.locator("#chat").get_by_text("Rome").wait_for(timeout=60_000)
    shot(page, "edit-branch")
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        session = next(s for s in store.list_sessions() if s.title == "What is the capital of Germany?")
        questions = [m for m in store.all_messages(session.id) if m.role == "user"]
    assert [q.text for q in questions] == ["What is the capital of Germany?", "What is the capital of Italy?"]
    assert questions[0].parent_id == questions[1].parent_id  # siblings: the old branch stays


def test_stop_ends_a_long_answer_mid_stream(page, app_url):
    from playwright.sync_api import expect

    page.goto(app_url)
    ask(page, "Write a very long story about a dragon, a knight and a castle.")
    page.wait_for_function(  # some of the story is on screen; more is on its way
        """() => {
            const bots = document.querySelectorAll("#chat .message.bot, #chat [data-testid='bot']");
            return bots.length > 0 && bots[bots.length - 1].innerText.length > 40;
        }""",
        timeout=60_000,
    )
    page.locator("#stop").click()
    metrics = page.locator("#chat .metrics").last
    metrics.wait_for(timeout=30_000)
    assert "· cancelled" in metrics.inner_text()
    expect(page.locator("#input textarea")).to_be_enabled(timeout=15_000)  # ready for more
    shot(page, "stop-mid-answer")


def test_login_page_guards_the_app(page, tmp_path):
    from sessions import Store
    from tests.conftest import start_app, stop_app

    data_dir = tmp_path / "data"
    proc, url = start_app("--data-dir", str(data_dir), "--auth", "ann:s3cret")
    try:
        page.goto(url)
        shot(page, "login-page")
        page.get_by_label("username").fill("ann")
        page.get_by_label("password").fill("wrong")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials", exact=False).wait_for(timeout=15_000)
        assert page.locator("#input").count() == 0  # still outside
        shot(page, "login-refused")
        page.get_by_label("username").fill("ann")  # the failed attempt cleared it
        page.get_by_label("password").fill("s3cret")
        page.get_by_role("button", name="Login").click()
        ask(page, "What is the capital of France?")
        page.locator("#chat .metrics").last.wait_for(timeout=60_000)
        shot(page, "logged-in-chat")
    finally:
        stop_app(proc)
    with Store(data_dir) as store:
        assert [s.title for s in store.list_sessions(owner="ann")] == ["What is the capital of France?"]


def test_compare_two_models_side_by_side_and_vote(page, compare_app_url):
    page.goto(compare_app_url)
    page.get_by_role("tab", name="Compare").click()
    picker = page.locator("#compare-models")
    picker.locator("input[name='tiny-llama4']").check()  # beside the preselected SmolLM2
    box = page.locator("#compare-input textarea")
    box.fill("What is the capital of France?")
    box.press("Enter")
    for index in (0, 1):
        page.locator(f"#compare-metrics-{index}").get_by_text("tokens/s").wait_for(timeout=90_000)
    assert "Paris" in page.locator("#compare-chat-0").inner_text()
    assert "context" in page.locator("#compare-metrics-1").inner_text()
    page.locator("#ttft-plot svg.marks").wait_for(timeout=30_000)
    page.locator("#speed-plot svg.marks").wait_for(timeout=30_000)
    shot(page, "compare-side-by-side")
    page.locator("#compare-votes").get_by_role("button", name="A is better").click()
    page.locator("#compare-notice").get_by_text("Vote saved.").wait_for(timeout=30_000)
    page.locator("#leaderboard-panel").get_by_text("Leaderboard", exact=True).click()
    page.locator("#leaderboard >> text=smollm2-135m >> visible=true").first.wait_for(timeout=30_000)
    shot(page, "compare-voted")
