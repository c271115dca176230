"""The prompt's reading in a real browser: a ~6,000-token document sent to the
embedded model, and the answer bubble saying how far the model has read, rising,
until the first token replaces it."""

from __future__ import annotations

import itertools
import os
import re

import pytest

from tests.chat.test_prompt_progress import long_document
from tests.conftest import start_app, stop_app
from tests.fixtures.browser import ask, attach, glance, pytestmark, shot  # noqa: F401 (skip without Chromium)

READING = re.compile(r"reading the prompt: ([\d,]+) of ([\d,]+) tokens")
# Every change of the last answer bubble, recorded in the page as it happens (no polling
# to miss a state): "R:<reading line>" while the prompt is read, "T:<text>" after.
BOTS = """document.querySelectorAll('#chat .message.bot, #chat [data-testid="bot"]')"""
# Only answers that come after the call count: `window.answered` bubbles are older.
RECORD_BUBBLES = f"""() => {{
  window.bubbles = [];
  window.answered = {BOTS}.length;
  const chat = document.querySelector('#chat');
  new MutationObserver(() => {{
    const bots = {BOTS};
    if (bots.length <= window.answered) return;
    const last = bots[bots.length - 1];
    const reading = last.querySelector('.reading');
    const text = (reading ? reading.innerText : last.innerText).trim();
    if (!text || text === '…' || text === 'Loading content') return;  // Gradio's pending bubble
    const entry = (reading ? 'R:' : 'T:') + text;
    if (window.bubbles[window.bubbles.length - 1] !== entry) window.bubbles.push(entry);
  }}).observe(chat, {{subtree: true, childList: true, characterData: true}});
}}"""
FROM_HERE = f"() => {{ window.bubbles = []; window.answered = {BOTS}.length; }}"
ANSWERED = "() => window.bubbles.some(b => b.startsWith('T:'))"
READ_TWICE = """() => new Set(window.bubbles.filter(b => b.startsWith('R:'))).size >= 3"""


@pytest.fixture(scope="module")
def small_batch_app():
    """The app reading 64 prompt tokens per step: a report every 64 tokens."""
    os.environ["L4P_N_BATCH"] = "64"
    try:
        proc, url = start_app()
    finally:
        del os.environ["L4P_N_BATCH"]
    yield url
    stop_app(proc)


def wait_while_the_reading_rises(page, still_s: int = 180) -> None:
    """Wait for the answer's first words as a person does: as long as the reading line
    keeps moving (a loaded machine reads slowly), failing only when it stands still."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    seen = -1
    while True:
        try:
            page.wait_for_function(ANSWERED, timeout=still_s * 1000)
            return
        except PlaywrightTimeout:
            moved = page.evaluate("window.bubbles.length")
            assert moved > seen, f"no answer and the reading line stood still for {still_s} s"
            seen = moved


def readings(bubbles: list[str]) -> list[tuple[int, int]]:
    """(done, total) of each reading line before the first answer text."""
    before = list(itertools.takewhile(lambda b: b.startswith("R:"), bubbles))
    found = [READING.search(b) for b in before]
    assert all(found), before
    return [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in found]


def test_the_bubble_shows_the_reading_rise_and_stop_ends_it(page, small_batch_app, tmp_path):
    from playwright.sync_api import expect

    document = tmp_path / "survey.txt"
    document.write_text(long_document())
    page.goto(small_batch_app)
    attach(page, [str(document)])
    page.evaluate(RECORD_BUBBLES)
    ask(page, "How many workers were in section 3?")
    page.wait_for_function(READ_TWICE, timeout=300_000)
    glance(page, "chat-reading-progress")  # no full-page capture: it would re-render under Stop
    stop = page.locator("#stop")
    expect(stop).to_be_enabled(timeout=60_000)
    stop.click(timeout=90_000)  # Stop while the model reads (a click retries while re-rendered)
    page.locator("#chat .metrics").last.get_by_text("cancelled").wait_for(timeout=120_000)
    assert page.locator("#chat .reading").count() == 0  # the line went with the run
    stopped = readings(page.evaluate("window.bubbles"))
    done, totals = [d for d, _ in stopped], {t for _, t in stopped}
    assert len(totals) == 1 and totals.pop() > 5_000  # one prompt: the whole ~6,000-token document
    assert len(set(done)) >= 3 and done == sorted(done)  # rose at least twice
    assert done[-1] < stopped[-1][1]  # Stop came before the whole prompt was read

    # A follow-up reads on from what is in the cache, until the answer replaces the line.
    page.evaluate(FROM_HERE)
    ask(page, "Which section mentions the harbour first?")
    wait_while_the_reading_rises(page)
    bubbles = page.evaluate("window.bubbles")
    resumed = readings(bubbles)
    assert resumed[0][0] > 0 and resumed[-1][1] > 5_000  # not from 0: the part read is reused
    assert len({d for d, _ in resumed}) >= 3 and resumed == sorted(resumed)
    first = next(i for i, b in enumerate(bubbles) if b.startswith("T:"))
    assert not any(b.startswith("R:") for b in bubbles[first:])  # the answer replaced it
    shot(page, "chat-reading-resumed")
    # The answer itself is not what this test is about: stop it if it still runs (a DOM
    # click, which does not wait for a button the finished answer has hidden).
    page.evaluate("() => document.querySelector('#stop button, button#stop')?.click()")
