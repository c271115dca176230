"""The first run leads to Llama 4: the page says which model runs (the embedded
SmolLM2-135M, text only, not Llama 4) and what to do next on this machine, in a real
browser; the line goes once a Llama 4 is chosen, and nothing claims Llama 4 before.
`launch.py` prints the same two lines at start-up."""

from __future__ import annotations

import re

import pytest

from tests.conftest import start_app, stop_app
from tests.fixtures.browser import shot

HOSTED_KEYS = ("OPENROUTER_API_KEY", "DEEPINFRA_API_KEY", "SAMBANOVA_API_KEY")
RUNNING = "Running SmolLM2 135M Instruct Q4_1 (the embedded model, text only): not Llama 4."


@pytest.fixture(scope="module")
def first_run_app(tiny_llama4):
    """A fresh start with 60 GB to spend, the tiny Llama 4 also offered, no provider key."""
    model, mmproj = tiny_llama4
    with pytest.MonkeyPatch.context() as patch:
        for key in HOSTED_KEYS:
            patch.delenv(key, raising=False)
        proc, url = start_app("--memory-budget-gb", "60", "--extra-model", f"{model}:{mmproj}")
    yield proc, url
    stop_app(proc)


def test_launch_prints_which_model_runs_and_the_way_to_llama4(first_run_app):
    proc, _ = first_run_app
    lines = [proc.stdout.readline().strip() for _ in range(3)]
    assert lines[0].startswith("Playground on http://127.0.0.1:")  # not "Llama 4 Playground"
    assert lines[1] == RUNNING
    assert lines[2].startswith(
        "For Llama 4: pull Llama 4 Scout 17B-16E Instruct Q2_K_XL (44.0 GB, fits here): "
    )
    assert "launch.py pull scout-q2_k_xl (or Pull in the page's Models tab)" in lines[2]
    assert "set OPENROUTER_API_KEY and run launch.py --provider openrouter-scout" in lines[2]


def test_the_page_says_it_is_not_llama4_yet_and_how_to_get_it(first_run_app, page):
    _, url = first_run_app
    page.goto(url)
    banner = page.locator("#first-run")
    banner.wait_for(state="visible", timeout=30_000)
    text = banner.inner_text()
    assert RUNNING in text
    assert "launch.py pull scout-q2_k_xl" in text and "Pull in the Models tab" in text
    assert (
        "Llama 4 Scout on OpenRouter with your API key there: launch.py --provider openrouter-scout" in text
    )
    assert "OPENROUTER_API_KEY" not in text  # a sentence, not a variable name
    assert page.title() == "Playground: SmolLM2 135M Instruct Q4_1, not Llama 4"
    assert page.locator("#title").inner_text().strip() == "Playground"
    shot(page, "first-run")
    # Choosing a Llama 4 makes the line go: it is no longer true.
    page.locator("#model input").click()
    page.get_by_role("option", name=re.compile(r"^tiny")).first.click()
    banner.wait_for(state="hidden", timeout=30_000)
    shot(page, "first-run-llama4-chosen")


def test_a_llama4_start_claims_llama4_and_shows_no_first_run_line(vision_app_url, page):
    page.goto(vision_app_url)
    page.locator("#title").wait_for(timeout=30_000)
    assert page.title() == "Llama 4 Playground"
    assert page.locator("#title").inner_text().strip() == "Llama 4 Playground"
    assert not page.locator("#first-run").is_visible()
