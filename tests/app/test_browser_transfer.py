"""Export and import in a real browser (Debian Chromium via Playwright): the open chat
downloads as JSON (the CLI's format) and Markdown, a JSON export imports back into the
list, and a damaged file is one line on the page."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.browser import ask, pytestmark, shot  # noqa: F401 (skip without Chromium)

ANSWER_S = 90_000  # a model answer under load
SHOWN_S = 30_000  # a page update


def download(page, button: str, name_end: str) -> str:
    """Click an export button, then the file it offers; the downloaded text."""
    page.locator(button).click()
    link = page.locator("#export-file tr").filter(has_text=name_end).locator("a[download]").first
    link.wait_for(timeout=SHOWN_S)
    with page.expect_download(timeout=SHOWN_S) as started:
        link.click()
    return Path(started.value.path()).read_text(encoding="utf-8")


def import_file(page, path: Path) -> None:
    """Import as a person does: the button, then the file in the picker."""
    with page.expect_file_chooser(timeout=SHOWN_S) as chooser:
        page.locator("#import-chat").click()
    chooser.value.set_files(str(path))


def test_export_both_formats_then_import_the_json(page, app_url, tmp_path):
    from playwright.sync_api import expect

    page.goto(app_url)
    ask(page, "What is the capital of Norway?")
    page.locator("#chat .metrics").last.wait_for(timeout=ANSWER_S)
    page.locator("#chat-actions > button").click()  # the "This chat" fold

    exported = json.loads(download(page, "#export-json", ".json"))
    assert exported["format"] == "llama4-playground/session"
    assert exported["session"]["title"] == "What is the capital of Norway?"
    assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
    markdown = download(page, "#export-markdown", ".md")
    assert markdown.startswith("# What is the capital of Norway?") and "## Assistant" in markdown
    shot(page, "export-files")

    exported["session"]["title"] = "Imported Norway chat"
    upload = tmp_path / "norway.json"
    upload.write_text(json.dumps(exported), encoding="utf-8")
    import_file(page, upload)
    entry = page.locator("#chats label").filter(has_text="Imported Norway chat")
    expect(entry).to_have_count(1, timeout=SHOWN_S)
    expect(page.locator("#chat")).to_contain_text("What is the capital of Norway?", timeout=SHOWN_S)
    shot(page, "import-listed")

    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(exported)[:-100], encoding="utf-8")
    import_file(page, damaged)
    expect(page.locator("#notice")).to_contain_text("not a chat export", timeout=SHOWN_S)
    expect(entry).to_have_count(1)  # nothing more imported
