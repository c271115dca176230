"""The page's pure parts, without a browser: what the page viewer marks as quoted and
says was sent, and the order and labels of the model pickers."""

from __future__ import annotations

from app.models_tab import abilities, get_more, picker_choices, ready_choices
from app.page_viewer import cites, page_ranges, quoted_html
from engine.spec import ModelSpec


def test_quoted_words_are_marked_only_in_runs_of_three_or_more():
    page = "Pears ripen late in the South field. Apples ripen early."
    marked = quoted_html(page, ["They say pears ripen late in the south field [p. 2]. Apples are red."])
    assert marked == "<mark>Pears ripen late in the South field</mark>. Apples ripen early."


def test_a_quote_across_a_line_break_is_one_mark():
    assert (
        quoted_html("the cold\nbarn holds them", ["in the cold barn"])
        == "<mark>the cold\nbarn</mark> holds them"
    )


def test_page_text_is_escaped_marks_or_not():
    page = "<script>alert(1)</script> & the barn door opens"
    marked = quoted_html(page, ["the barn door"])
    assert "<script>" not in marked and "&lt;script&gt;" in marked and "&amp;" in marked
    assert "<mark>the barn door</mark>" in marked
    assert quoted_html("<b>x</b>", []) == "&lt;b&gt;x&lt;/b&gt;"


def test_which_pages_an_answer_cites():
    assert cites("as it says [p. 2].", 2) and not cites("as it says [p. 2].", 3)
    assert cites("see [pp. 3-5]", 4) and not cites("see [pp. 3-5]", 6)
    assert not cites("page 2 says so", 2)


def test_page_ranges():
    assert page_ranges([1, 2, 3, 7, 9, 10]) == "pages 1–3, 7, 9–10"
    assert page_ranges([4]) == "page 4"


def _specs(tmp_path) -> list[ModelSpec]:
    gguf = tmp_path / "here.gguf"
    gguf.write_bytes(b"GGUF")
    mmproj = tmp_path / "mmproj.gguf"
    mmproj.write_bytes(b"GGUF")
    return [
        ModelSpec(
            "gone", "Gone Q4", model_path=tmp_path / "gone.gguf", hf_repo="org/gone-GGUF", size_bytes=9e9
        ),
        ModelSpec("groq", "Scout on Groq", backend="openai", endpoint="https://x/v1", provider="groq"),
        ModelSpec("server", "Scout on vLLM", backend="openai", endpoint="http://box:8000/v1", n_ctx=430_000),
        ModelSpec("here", "Here Q4", model_path=gguf, mmproj_path=mmproj, n_ctx=32768),
        ModelSpec(
            "keyless", "Needs a key", backend="openai", endpoint="https://y/v1", api_key_env="NO_SUCH_KEY_X"
        ),
    ]


def test_pickers_list_local_then_endpoint_then_hosted_then_what_is_missing(tmp_path):
    specs = _specs(tmp_path)
    assert [name for _, name in ready_choices(specs)] == ["here", "server", "groq"]
    assert [name for _, name in picker_choices(specs)] == ["here", "server", "groq", "gone", "keyless"]
    labels = [label for label, _ in picker_choices(specs)]
    assert labels[0] == "Here Q4 · sees images · 32K context · local"
    assert labels[1] == "Scout on vLLM · text only · 430K context · endpoint"
    assert labels[2].endswith("· hosted")
    assert all(label.startswith("get more: ") for label in labels[3:])
    assert abilities(ModelSpec("m", "M", backend="openai", endpoint="e", n_ctx=1_000_000)).startswith(
        "text only · 1M context"
    )


def test_get_more_says_how_to_get_each_missing_model(tmp_path):
    text = get_more(_specs(tmp_path))
    assert text.startswith("2 more:") and "`launch.py pull NAME`" in text
    assert "- `gone` · 9 GB" in text
    assert "- `keyless` · an API key in $NO_SUCH_KEY_X" in text
    assert "`here`" not in text and "`server`" not in text
