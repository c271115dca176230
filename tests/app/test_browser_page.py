"""The page as a person sees it at 1440x900 and 420x900 (Debian Chromium via Playwright):
the page viewer, the model pickers, buttons that show only when they can act, and the
narrow layout. Screenshots land in test-artifacts/ (<name>-<width>.png)."""

from __future__ import annotations

import os

import pytest

from documents.parts import ChatMessage, DocumentPart
from engine.types import TextPart
from sessions import Store
from tests.conftest import ARTIFACTS
from tests.fixtures.browser import ask, pytestmark  # noqa: F401 (skip without Chromium)
from tests.fixtures.documents import text_pdf

WIDE, NARROW = (1440, 900), (420, 900)


@pytest.fixture
def open_page(browser):
    pages = []

    def open_at(url: str, size: tuple[int, int]):
        page = browser.new_page(viewport={"width": size[0], "height": size[1]})
        pages.append(page)
        page.goto(url)
        page.locator("#input textarea").wait_for(timeout=30_000)
        return page

    yield open_at
    for page in pages:
        page.close()


def screen(page, name: str) -> None:
    """What the window shows, as a person sees it (not the whole scrolled page)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.viewport_size['width']}.png"))


def cited_chat(title: str) -> None:
    """A saved chat about a 3-page PDF whose answer cites page 2 (pages 1-2 were sent)."""
    pages = [
        "Apples grow in the north orchard and are picked in September.",
        "Pears ripen late in the south field. The farmer stores them in the cold barn.",
        "Plums are small and sweet.",
    ]
    with Store(os.environ["L4P_DATA_DIR"]) as store:
        row = store.ingest_document(text_pdf(pages), "orchard.pdf")
        session = store.create_session(title=title)
        question = ChatMessage(
            "user", (DocumentPart(row.sha256, row.name, 3, text_pages=(1, 2)), TextPart("Where are pears?"))
        )
        user = store.add_user_message(session, None, question)
        with store.start_answer(session, user, "smollm2-135m") as answer:
            answer.append("Pears ripen late in the south field [p. 2].")


def open_saved_chat(page, title: str) -> None:
    if page.viewport_size["width"] < 800:  # the saved chats are folded there
        page.locator("#new-chat").wait_for(state="hidden", timeout=15_000)
        page.locator("#chats-drawer > button").click()
    entry = page.locator("#chats label").filter(has_text=title).first
    entry.wait_for(timeout=30_000)
    entry.click()


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1440", "420"])
def test_the_page_viewer_shows_the_cited_page_large_and_turns_pages(open_page, app_url, size):
    from playwright.sync_api import expect

    title = f"Orchard viewer {size[0]}"
    cited_chat(title)
    page = open_page(app_url, size)
    open_saved_chat(page, title)
    link = page.locator("#chat a").filter(has_text="[p. 2]").first
    link.wait_for(timeout=30_000)
    link.click()
    viewer = page.locator("#page-viewer")
    viewer.get_by_text("orchard.pdf — page 2 of 3").wait_for(timeout=30_000)
    image = page.locator("#page-image img")
    image.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#page-image img').complete")
    width = image.bounding_box()["width"]
    assert width >= (700 if size == WIDE else 0.9 * size[0] - 40), width
    assert "pages 1–2 (this page was sent)" in page.locator("#page-sent").inner_text()
    # The words the answer quoted are marked; the rest of the page is not.
    marks = [m.inner_text() for m in page.locator("#page-text mark").all()]
    assert marks == ["Pears ripen late in the south field"], marks
    assert "cold barn" in page.locator("#page-text").inner_text()
    expect(page.locator("#page-next")).to_be_enabled()
    screen(page, "page-viewer")

    page.locator("#page-zoom-in").click()  # zoom widens the image past its frame
    page.wait_for_function(f"() => document.querySelector('#page-image img').width > {width + 50}")
    page.locator("#page-next").click()
    viewer.get_by_text("orchard.pdf — page 3 of 3").wait_for(timeout=30_000)
    assert "this page was not sent" in page.locator("#page-sent").inner_text()
    assert page.locator("#page-text mark").count() == 0  # no answer cites page 3
    expect(page.locator("#page-next")).to_be_disabled()
    go_to = page.locator("#page-go input")
    assert go_to.input_value() == "3"
    go_to.fill("1")
    go_to.press("Enter")
    viewer.get_by_text("orchard.pdf — page 1 of 3").wait_for(timeout=30_000)
    expect(page.locator("#page-previous")).to_be_disabled()
    page.locator("#page-title").click()  # Esc from the page, not from the page box
    page.keyboard.press("Escape")  # Esc closes the viewer
    expect(viewer).to_be_hidden(timeout=15_000)


def test_pickers_list_the_models_that_are_here_first(open_page, compare_app_url):
    page = open_page(compare_app_url, WIDE)
    page.locator("#model input").click()
    page.locator("#model li[role=option]").first.wait_for(timeout=15_000)
    options = [o.inner_text() for o in page.locator("#model li[role=option]").all() if o.is_visible()]
    assert options and not any("get more" in o for o in options)
    local = [i for i, o in enumerate(options) if o.endswith("· local")]
    assert local == list(range(3)), options  # SmolLM2 and the two tiny Llama 4 files lead
    assert "sees images" in options[1] and "text only" in options[0]
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Compare").click()
    labels = page.locator("#compare-models label").all_inner_texts()
    where = [label.rsplit("· ", 1)[-1] for label in labels]
    assert where[:3] == ["local"] * 3 and not any("get more" in label for label in labels), labels
    assert where == sorted(where, key=["local", "endpoint", "hosted"].index)
    page.locator("#compare-get-more > button").click()
    more = page.locator("#compare-get-more")
    more.get_by_text("launch.py pull NAME").wait_for(timeout=15_000)
    assert "scout-q4_k_xl" in more.inner_text()


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1440", "420"])
def test_compare_three_models(open_page, compare_app_url, size):
    from playwright.sync_api import expect

    page = open_page(compare_app_url, size)
    page.get_by_role("tab", name="Compare").click()
    picker = page.locator("#compare-models")
    picker.locator("input[name='tiny-llama4']").check()  # beside the preselected SmolLM2
    picker.locator("input[name='tiny-llama4-2']").check()
    box = page.locator("#compare-input textarea")
    box.fill("What is the capital of France?")
    box.press("Enter")
    for index in (0, 1, 2):
        page.locator(f"#compare-metrics-{index}").get_by_text("tokens/s").wait_for(timeout=120_000)
    assert "Paris" in page.locator("#compare-chat-0").inner_text()
    expect(page.locator("#compare-stop")).to_be_hidden(timeout=30_000)  # nothing runs any more
    page.evaluate("window.scrollTo(0, 0)")
    screen(page, "compare-three")


def test_buttons_show_only_when_they_can_act(open_page, app_url):
    from playwright.sync_api import expect

    page = open_page(app_url, WIDE)
    for button in ("#stop", "#regenerate", "#previous-answer", "#next-answer"):
        expect(page.locator(button)).to_be_hidden()  # an empty chat: nothing to stop or redo
    box = page.locator("#input textarea")
    box.fill("first line")
    box.press("Shift+Enter")  # a new line, not a send
    box.type("second line")
    assert box.input_value() == "first line\nsecond line"
    assert page.locator("#chat .message").count() == 0

    box.fill("Write a very long story about a dragon, a knight and a castle.")
    box.press("Enter")
    expect(page.locator("#stop")).to_be_visible(timeout=30_000)
    page.wait_for_function(  # some of the story is on screen; more is on its way
        """() => {
            const bots = document.querySelectorAll("#chat .message.bot, #chat [data-testid='bot']");
            return bots.length > 0 && bots[bots.length - 1].innerText.length > 40;
        }""",
        timeout=60_000,
    )
    assert not page.locator("#regenerate").is_visible()  # one answer at a time
    page.keyboard.press("Escape")  # Esc stops
    metrics = page.locator("#chat .metrics").last
    metrics.wait_for(timeout=30_000)
    assert "· cancelled" in metrics.inner_text()
    expect(page.locator("#stop")).to_be_hidden(timeout=15_000)
    expect(page.locator("#regenerate")).to_be_visible()
    expect(page.locator("#previous-answer")).to_be_hidden()  # only one answer so far

    page.locator("#new-chat").click()
    expect(page.locator("#chat .message")).to_have_count(0, timeout=15_000)  # the new chat is on screen
    ask(page, "What is the capital of France?")
    page.locator("#chat .metrics").last.wait_for(timeout=90_000)
    expect(page.locator("#previous-answer")).to_be_hidden()
    page.locator("#regenerate").click()
    page.locator("#chat").get_by_text("answer 2/2").wait_for(timeout=60_000)
    expect(page.locator("#previous-answer")).to_be_visible(timeout=15_000)
    expect(page.locator("#next-answer")).to_be_visible()
    page.locator("#previous-answer").click()
    page.locator("#chat").get_by_text("answer 1/2").wait_for(timeout=30_000)


def test_a_refused_send_keeps_the_attachments(open_page, app_url, write_png):
    from playwright.sync_api import expect

    page = open_page(app_url, WIDE)  # the embedded model is text only: it refuses images
    page.locator("#input input[type=file]").set_input_files([str(write_png("red.png"))])
    page.locator("#input img").first.wait_for(timeout=30_000)
    ask(page, "what colour is this?")
    page.get_by_text("cannot see images").first.wait_for(timeout=30_000)  # the warning
    expect(page.locator("#stop")).to_be_hidden(timeout=15_000)  # the run after the send is over
    assert page.locator("#input img").count() == 1
    assert page.locator("#input textarea").input_value() == "what colour is this?"


def test_at_420_px_the_chat_comes_first(open_page, app_url):
    page = open_page(app_url, NARROW)
    bottom = page.locator("#input").bounding_box()
    assert bottom["y"] + bottom["height"] <= NARROW[1], bottom
    chat, chats = page.locator("#chat").bounding_box(), page.locator("#chats-drawer").bounding_box()
    assert chat["y"] < chats["y"]  # the chat above the saved chats
    page.locator("#new-chat").wait_for(state="hidden", timeout=15_000)  # the drawer folded
    ask(page, "What is the capital of France?")
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    assert "Paris" in page.locator("#chat").inner_text()
    screen(page, "chat-narrow")


@pytest.mark.parametrize("size", [WIDE, NARROW], ids=["1440", "420"])
def test_chat_with_two_images(open_page, vision_app_url, write_png, size):
    page = open_page(vision_app_url, size)
    files = [str(write_png("red.png")), str(write_png("blue.png", color="blue"))]
    page.locator("#input input[type=file]").set_input_files(files)
    page.locator("#input img").nth(1).wait_for(timeout=30_000)
    ask(page, "compare the two images")
    page.locator("#chat .metrics").last.wait_for(timeout=60_000)
    assert page.locator("#chat img").count() >= 2
    bottom = page.locator("#input").bounding_box()
    assert bottom["y"] + bottom["height"] <= size[1], bottom
    screen(page, "chat-two-images")
