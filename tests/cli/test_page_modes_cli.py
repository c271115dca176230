"""`ask --page-mode`: single pages as text, image or both, through a real subprocess."""

from __future__ import annotations

import pytest

from tests.documents.test_documents_context import mixed_pdf
from tests.documents.test_page_modes import TYPED
from tests.fixtures.cli import last_json, run


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "mixed.pdf"
    path.write_bytes(mixed_pdf([TYPED, TYPED, None]))
    return path


def test_page_modes_choose_how_each_page_goes_and_say_what_it_costs(tiny_llama4, mixed):
    model, mmproj = tiny_llama4
    result = run(
        *("ask", "--model-path", str(model), "--mmproj", str(mmproj), "--max-tokens", "4", "--json"),
        *("--file", str(mixed), "--page-mode", "1=image, 2=both", "What is here?"),
    )
    assert result.returncode == 0, result.stderr
    (cost,) = last_json(result.stdout)["page_costs"]
    assert cost["image"] == [1, 3] and cost["both"] == [2] and cost["text"] == []
    assert cost["both_tokens"] > cost["image_tokens"] // 2 > 0
    assert f"mixed.pdf as image p. 1, 3 ({cost['image_tokens']:,} tokens)" in result.stderr


@pytest.mark.parametrize(
    ("modes", "message"),
    [
        ("3=picture", "error: page mode 'picture' is not one of text, image, both"),
        ("page 3", "error: page mode 'page 3' is not like 3=image, 5-7=both"),
        ("2-9=text", "error: page modes: mixed.pdf has 3 pages; no page 4"),
        ("1=both", "error: page modes: page 1 as both needs a model that sees"),
    ],
)
def test_bad_page_modes_exit_2_with_one_line(mixed, modes, message):
    result = run("ask", "--file", str(mixed), "--page-mode", modes, "--no-save", "What is here?")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
