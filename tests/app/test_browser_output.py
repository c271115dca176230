"""Model output in a real browser (Debian Chromium): a saved chat whose answers are the
whole XSS corpus opens in the page, and nothing in it runs, overlays the page, posts
a form, frames or embeds anything, or fetches from outside; code blocks (blank lines
and markup in them) and tables still show as such. The page works under its own
Content-Security-Policy and the web guard (its requests name its own origin)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from documents.parts import ChatMessage
from sessions import Store
from tests.app.xss_corpus import PAYLOADS
from tests.conftest import ARTIFACTS, start_app, stop_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TITLE = "XSS corpus"
CODE = "```python\nif a < b:\n\n\n    print('<form>')\n```\n\n| k | v |\n|---|---|\n| a | 1 |"
# Elements no answer may leave in the page, and what every message's content is checked for.
FORBIDDEN = ",".join(
    (
        *("form", "input", "button", "select", "textarea", "iframe", "frame", "object", "embed"),
        *("style", "script", "link", "meta", "base", "svg", "math", "video", "audio"),
    )
)
CHECK = """() => {
  const answers = [...document.querySelectorAll("#chat [data-testid='bot'] .message-content")];
  const bad = [];
  for (const answer of answers) {
    for (const el of answer.querySelectorAll("*")) {
      if (el.matches(FORBIDDEN)) bad.push("element " + el.tagName);
      if (el.hasAttribute("style")) bad.push("style on " + el.tagName);
      for (const attr of el.attributes) if (attr.name.startsWith("on")) bad.push(attr.name);
      const place = getComputedStyle(el).position;
      if (place === "fixed" || place === "absolute") bad.push(place + " " + el.tagName);
      if (el.tagName === "A" && el.href && !/^(https?:|mailto:)/.test(el.href)) bad.push("href " + el.href);
      if (el.tagName === "A" && el.getAttribute("href") && !/^#/.test(el.getAttribute("href"))
          && !(el.rel.includes("noopener") && el.rel.includes("noreferrer"))) bad.push("rel " + el.rel);
      if (el.tagName === "IMG" && !new URL(el.src, location.href).pathname.startsWith("/blobs/"))
        bad.push("img " + el.src);
    }
  }
  return {answers: answers.length, bad, xss: window.__xss || 0};
}""".replace("FORBIDDEN", repr(FORBIDDEN))


@pytest.fixture(scope="module")
def corpus_app(tmp_path_factory):
    data = tmp_path_factory.mktemp("xss-browser")
    with Store(data) as store:
        session = store.create_session(title=TITLE)
        parent = None
        for payload in [*PAYLOADS, CODE]:
            parent = store.add_user_message(session, parent, ChatMessage.text("user", "show it"))
            with store.start_answer(session, parent, "smollm2-135m") as answer:
                answer.append(f"Here it is:\n\n{payload}\n\nDone.")
            parent = answer.id
    proc, url = start_app("--data-dir", str(data))
    yield SimpleNamespace(url=url, proc=proc)
    stop_app(proc)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()


def test_no_answer_in_the_corpus_acts_in_the_page(corpus_app, page):
    dialogs, outside, refused = [], [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda r: None if r.url.startswith(corpus_app.url) else outside.append(r.url))
    page.on("response", lambda r: refused.append(r.url) if r.status in (403, 415, 421) else None)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(corpus_app.url)
    entry = page.locator("#chats label").filter(has_text=TITLE).first
    entry.wait_for(timeout=30_000)
    entry.click()
    answers = page.locator("#chat [data-testid='bot']")
    answers.nth(len(PAYLOADS)).wait_for(timeout=60_000)  # every answer shown, the code one last
    page.wait_for_timeout(1500)  # time for anything that would run (onload, autofocus...)
    found = page.evaluate(CHECK)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "xss-corpus.png"))
    assert found["answers"] == len(PAYLOADS) + 1
    assert found["bad"] == [] and found["xss"] == 0 and dialogs == []
    assert [url for url in outside if not url.startswith(("data:", "blob:"))] == []
    assert refused == []  # the page's own requests all pass the web guard
    assert violations == []  # and the page needs nothing its policy forbids
    # Nothing covers the chat: the element at its centre belongs to the page.
    covering = page.evaluate(
        "() => { const r = document.querySelector('#chat').getBoundingClientRect();"
        " const el = document.elementFromPoint(r.x + r.width / 2, r.y + 20);"
        " return el ? el.closest('#chat') !== null || el.closest('gradio-app') !== null : false; }"
    )
    assert covering


def test_code_and_tables_still_show(corpus_app, page):
    page.goto(corpus_app.url)
    page.locator("#chats label").filter(has_text=TITLE).first.click(timeout=30_000)
    last = page.locator("#chat [data-testid='bot']").nth(len(PAYLOADS))
    last.locator("pre code").wait_for(timeout=60_000)
    code = last.locator("pre code").inner_text()
    assert "if a < b:" in code and "print('<form>')" in code
    assert code.count("\n") >= 3  # the blank lines stay inside the one block
    assert last.locator("table td").count() == 2
    assert last.locator("form").count() == 0
